// Command smolchat serves a browser chat with SmolLM3 on the GPU (WebGPU) or the CPU.
// Run `smolchat help` for the subcommands; with none it serves the chat at http://127.0.0.1:8080.
package main

import (
	"os"

	"smolchat/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
