package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"smolchat/assets"
	"smolchat/server/markdown"
)

// assetSet is the page's static files, held in memory with a content hash each. Pages link them as
// /assets/NAME?v=HASH, so a browser may cache them for good and still gets a new file after an upgrade.
type assetSet struct {
	files map[string]asset
}

type asset struct {
	body        []byte
	contentType string
	hash        string
}

var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".md":    "text/markdown; charset=utf-8",
	".txt":   "text/plain; charset=utf-8",
	".json":  "application/json",
	".woff2": "font/woff2",
}

func loadAssets() (*assetSet, error) {
	set := &assetSet{files: map[string]asset{}}
	err := fs.WalkDir(assets.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(assets.FS, name)
		if err != nil {
			return err
		}
		return set.add(name, body)
	})
	if err != nil {
		return nil, fmt.Errorf("server: loading assets: %w", err)
	}
	css, err := markdown.CSS()
	if err != nil {
		return nil, fmt.Errorf("server: code highlighting styles: %w", err)
	}
	return set, set.add("highlight.css", css)
}

func (a *assetSet) add(name string, body []byte) error {
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		return fmt.Errorf("asset %s: no content type for its extension", name)
	}
	sum := sha256.Sum256(body)
	a.files[name] = asset{body: body, contentType: ct, hash: hex.EncodeToString(sum[:6])}
	return nil
}

// assetURL is the versioned URL of an asset, for templates.
func (s *Server) assetURL(name string) (string, error) {
	f, ok := s.assets.files[name]
	if !ok {
		return "", fmt.Errorf("no asset %q", name)
	}
	return "/assets/" + name + "?v=" + f.hash, nil
}

func (s *Server) handleAsset(c *fiber.Ctx) error {
	name := strings.TrimPrefix(c.Params("*"), "/")
	f, ok := s.assets.files[name]
	if !ok {
		return fiber.NewError(fiber.StatusNotFound, "no such file")
	}
	etag := `"` + f.hash + `"`
	c.Set(fiber.HeaderETag, etag)
	if c.Query("v") == f.hash {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.contentType)
	return c.Send(f.body)
}
