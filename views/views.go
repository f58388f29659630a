// Package views holds the chat page's HTML templates (html/template syntax, rendered by
// gofiber/template/html), embedded so that the binary is self-contained.
//
// Template names are file paths without ".html": "index", "layouts/main", "partials/message".
package views

import (
	"embed"
	"net/http"
)

//go:embed *.html layouts/*.html partials/*.html
var files embed.FS

// FS is the templates as a file system for the template engine.
func FS() http.FileSystem { return http.FS(files) }
