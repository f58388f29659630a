//go:build !amd64 || purego

package kernels

// accelerated is nil where no assembly kernels exist: other architectures, and builds with the purego tag.
var accelerated *impl
