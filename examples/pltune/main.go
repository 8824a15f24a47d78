// Command pltune is the command-line face of the pltune library: corpus
// auditing, tokenization, training, alignment and evaluation. It is built only
// on pltune's public API.
//
// Exit status: 0 on success, 1 when the command ran and found a problem
// (rejected records in strict mode, lint findings, a failed run), 2 on usage
// errors (unknown command, wrong flag, missing argument).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Name may hold a space for nested commands
// ("corpus stats"); each file registering commands calls register from init.
type command struct {
	name    string
	summary string
	// run executes the command. args are the arguments after the command
	// name. Return a *usageError for bad invocations (exit 2), an *exitError
	// to choose the status, any other error for exit 1.
	run func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv carries the process's standard streams so commands can be tested.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("pltune: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usageError is a bad invocation: printed as one line, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError ends the command with the given status after printing msg (when
// not empty).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// newFlags returns a flag set for a command whose errors come back as
// usage errors instead of exiting the process. The usage text is printed on
// -h/--help.
func newFlags(env *cliEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "usage: pltune %s\n\n", usage)
		fs.SetOutput(env.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args into fs. It returns errHelp when help was asked
// for (and printed) and a usage error for a wrong flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package prints the usage on every parse error; only -h and
	// --help should, so it is silenced while parsing.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return errHelp
	}
	if err != nil {
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

// errHelp ends a command that printed its help: exit status 0.
var errHelp = errors.New("help printed")

// lookup finds the longest registered command name that prefixes args.
func lookup(args []string) (*command, []string) {
	for n := min(len(args), 3); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:]
		}
	}
	return nil, args
}

func printCommands(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: pltune COMMAND [flags] [args]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'pltune COMMAND --help' for a command's flags.")
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printCommands(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, rest := lookup(args)
	if c == nil {
		fmt.Fprintf(env.stderr, "pltune: unknown command %q; run 'pltune --help'\n", strings.Join(args, " "))
		return 2
	}
	err := c.run(ctx, env, rest)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "pltune %s: %s\n", c.name, ue.msg)
		return 2
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(env.stderr, "pltune %s: %s\n", c.name, ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(env.stderr, "pltune %s: %v\n", c.name, err)
		return 1
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
