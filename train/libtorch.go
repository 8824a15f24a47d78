package train

import (
	"fmt"
	"io"
	"log"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// LibtorchError is a failure inside libtorch during a training step —
// a shape mismatch, CUDA out of memory — that gotch's Must* functions
// report by log.Fatal, which would end the process. Run turns it into
// this error (wrapped with the step) instead.
type LibtorchError struct {
	Msg string
}

func (e *LibtorchError) Error() string { return "libtorch: " + e.Msg }

// guard runs fn, turning a panic — including a LibtorchError raised by
// the log.Fatal hook — into an error.
func guard(fn func() error) (err error) {
	defer func() {
		switch p := recover().(type) {
		case nil:
		case *LibtorchError:
			err = p
		case error:
			err = fmt.Errorf("panic: %w", p)
		default:
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// fatalHook holds the standard logger's output while runs are in progress:
// gotch calls log.Fatal on every libtorch error, and the hook's writer,
// which log.Fatal calls before it exits, panics with a LibtorchError there
// instead, for guard to recover. Other log output passes through.
var fatalHook struct {
	sync.Mutex
	runs int
	prev io.Writer
}

// catchLibtorchFatal installs the hook for one run; the function it
// returns removes it.
func catchLibtorchFatal() func() {
	fatalHook.Lock()
	defer fatalHook.Unlock()
	if fatalHook.runs == 0 {
		fatalHook.prev = log.Writer()
		log.SetOutput(fatalWriter{fatalHook.prev})
	}
	fatalHook.runs++
	return func() {
		fatalHook.Lock()
		defer fatalHook.Unlock()
		if fatalHook.runs--; fatalHook.runs == 0 {
			log.SetOutput(fatalHook.prev)
		}
	}
}

type fatalWriter struct{ w io.Writer }

func (f fatalWriter) Write(p []byte) (int, error) {
	if calledFromFatal() {
		panic(&LibtorchError{Msg: fatalMessage(string(p))})
	}
	return f.w.Write(p)
}

// logDate matches the standard logger's date and time prefix.
var logDate = regexp.MustCompile(`^(\d{4}/\d\d/\d\d )?(\d\d:\d\d:\d\d(\.\d+)? )?`)

// fatalMessage is the libtorch error of a log.Fatal line: without the
// logger's prefix, date and time, and without the Go stack trace gotch
// appends.
func fatalMessage(line string) string {
	line = strings.TrimPrefix(line, log.Prefix())
	line = logDate.ReplaceAllString(line, "")
	if i := strings.Index(line, "\ngoroutine "); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// calledFromFatal tells whether the write comes from log.Fatal (any of
// its forms).
func calledFromFatal() bool {
	pcs := make([]uintptr, 16)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		fr, more := frames.Next()
		switch fr.Function {
		case "log.Fatal", "log.Fatalf", "log.Fatalln", "log.(*Logger).Fatal", "log.(*Logger).Fatalf", "log.(*Logger).Fatalln":
			return true
		}
		if !more {
			return false
		}
	}
}
