//go:build unix

package server

import (
	"os"
	"os/exec"
	"syscall"
)

// runAsNobody sets *prepare to run a command as the unprivileged user nobody, for checks that root
// would pass regardless of file permissions. It reports false when this process cannot do that (it is
// not root).
func runAsNobody(prepare *func(*exec.Cmd)) bool {
	if os.Geteuid() != 0 {
		return false
	}
	*prepare = func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	return true
}
