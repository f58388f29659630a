//go:build !unix

package server

import "os/exec"

// runAsNobody reports false: switching users is a Unix feature.
func runAsNobody(prepare *func(*exec.Cmd)) bool { return false }
