// Package cli is smolchat's command line: one binary, subcommands registered by the files of this package.
// Every flag has an environment twin named SMOLCHAT_<FLAG> (upper case, '-' → '_'), read when the flag is
// not given on the command line. stdout carries only a command's output; logs go to stderr.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string // one line for `smolchat help`
	Usage   string // argument synopsis after the name, e.g. "FILE [--json]"
	// Flags declares the command's flags on fs; Run runs with the remaining positional arguments.
	Flags func(fs *flag.FlagSet)
	Run   func(env *Env, args []string) error
}

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Log            *slog.Logger
}

var commands = map[string]*Command{}

func register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// errUsage marks an error caused by bad arguments: main prints the command's usage with it.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// Main runs the command named by args[0] (default "serve") and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr, Stdin: stdin,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))}
	name := "serve"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		name, args = "help", args[1:]
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) > 0 {
			if c, ok := commands[args[0]]; ok {
				printUsage(stdout, c)
				return 0
			}
		}
		printHelp(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "smolchat: unknown command %q\n\n", name)
		printHelp(stderr)
		return 2
	}
	fs := flag.NewFlagSet("smolchat "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, c)
			return 0
		}
		fmt.Fprintf(stderr, "smolchat %s: %v\n", c.Name, err)
		printUsage(stderr, c)
		return 2
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "smolchat %s: %v\n", c.Name, err)
		return 2
	}
	if err := c.Run(env, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "smolchat %s: %v\n", c.Name, err)
		if errors.Is(err, errUsage) {
			printUsage(stderr, c)
			return 2
		}
		return 1
	}
	return 0
}

// parseInterspersed lets flags follow positional arguments ("inspect FILE --json"), as users expect.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// EnvName is the environment twin of a flag: SMOLCHAT_ plus the name in upper case with '-' as '_'.
func EnvName(flagName string) string {
	return "SMOLCHAT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("environment %s=%q: %v", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

func logLevel() slog.Level {
	var l slog.Level
	if v := os.Getenv("SMOLCHAT_LOG_LEVEL"); v != "" && l.UnmarshalText([]byte(v)) == nil {
		return l
	}
	return slog.LevelInfo
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "smolchat: chat with SmolLM3 on your GPU (WebGPU) or CPU.")
	fmt.Fprintln(w, "\nUsage: smolchat [command] [flags]   (no command = serve)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nRun 'smolchat help COMMAND' for a command's flags. Every flag has an environment twin SMOLCHAT_<FLAG>.")
}

func printUsage(w io.Writer, c *Command) {
	fmt.Fprintf(w, "Usage: smolchat %s %s\n\n%s\n", c.Name, c.Usage, c.Summary)
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	if c.Flags != nil {
		c.Flags(fs)
	}
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fmt.Fprintln(w, "\nEach flag can also be set through its environment twin, e.g. "+EnvName("threads")+".")
	}
}
