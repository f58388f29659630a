// Package assets holds the chat page's static files (script, styles, icon and the vendored htmx),
// embedded so that the binary works offline.
package assets

import "embed"

// FS is the static files, served under /assets/.
//
//go:embed app.js theme.js style.css favicon.svg vendor
var FS embed.FS
