// Command closurefs puts Nix closures into erofs and squashfs images, shows
// them through FUSE, verifies them and registers them with Nix.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"

	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // failure, or a mismatch found
	exitUsage   = 2
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

// command is one closurefs subcommand.
type command struct {
	name    string
	summary string // one line for `closurefs help`
	usage   string // argument synopsis, after "closurefs NAME "
	help    string // longer description printed by --help
	// flags adds the command's flags to fs and returns the function that
	// runs it with the remaining arguments.
	setup func(fs *pflag.FlagSet, env *env) func(args []string) error
}

// env is what a command needs of the process it runs in.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError marks an error caused by how the command was called (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitError carries a specific exit code without an extra message, e.g.
// for a verification mismatch already reported.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func commands() []*command {
	cmds := []*command{
		versionCommand(),
		snapshotCommand(),
		verifyCommand(), registerCommand(),
		lsCommand(), catCommand(), infoCommand(),
	}
	cmds = append(cmds, closureCommands()...)
	cmds = append(cmds, mountCommands()...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

func main() {
	// CLOSUREFS_CPUPROFILE=FILE writes a CPU profile of the run (for
	// `go tool pprof`): performance work starts from a profile.
	if f := os.Getenv("CLOSUREFS_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "closurefs: CLOSUREFS_CPUPROFILE: %v\n", err)
			os.Exit(exitFailure)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			fmt.Fprintf(os.Stderr, "closurefs: CLOSUREFS_CPUPROFILE: %v\n", err)
			os.Exit(exitFailure)
		}
		code := run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
		pprof.StopCPUProfile()
		out.Close()
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

func run(args []string, e *env) int {
	cmds := commands()
	if len(args) == 0 {
		printHelp(e.stderr, cmds)
		return exitUsage
	}
	name := args[0]
	isHelp := func(a string) bool { return a == "help" || a == "-h" || a == "--help" }
	if isHelp(name) {
		if len(args) > 1 && !isHelp(args[1]) {
			return run([]string{args[1], "--help"}, e)
		}
		printHelp(e.stdout, cmds)
		return exitOK
	}
	if name == "--version" {
		name = "version"
	}
	var cmd *command
	for _, c := range cmds {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(e.stderr, "closurefs: unknown command %q (see 'closurefs help')\n", name)
		return exitUsage
	}
	fs := pflag.NewFlagSet("closurefs "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.SetInterspersed(true)
	fs.SortFlags = false
	runFn := cmd.setup(fs, e)
	fs.Usage = func() {} // printed below, to stdout for --help
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printUsage(e.stdout, cmd, fs)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "closurefs %s: %v\n", cmd.name, err)
		fmt.Fprintf(e.stderr, "Run 'closurefs %s --help' for usage.\n", cmd.name)
		return exitUsage
	}
	err := runFn(fs.Args())
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "closurefs %s: %v\n", cmd.name, err)
		fmt.Fprintf(e.stderr, "Run 'closurefs %s --help' for usage.\n", cmd.name)
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "closurefs %s: %v\n", cmd.name, err)
		return exitFailure
	}
}

func printUsage(w io.Writer, cmd *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: closurefs %s %s\n\n%s\n", cmd.name, cmd.usage, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.help)
	}
	if fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}

func printHelp(w io.Writer, cmds []*command) {
	fmt.Fprintf(w, "closurefs puts Nix closures into erofs and squashfs images, shows them\nthrough FUSE, verifies them and registers them with Nix.\n\nUsage: closurefs COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-12s %s\n", "help", "show help for a command")
	fmt.Fprintf(w, "\nRun 'closurefs COMMAND --help' for a command's flags.\n")
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the closurefs version",
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			return func(args []string) error {
				if len(args) != 0 {
					return usagef("version takes no arguments")
				}
				fmt.Fprintf(e.stdout, "closurefs %s\n", version)
				return nil
			}
		},
	}
}
