// Package eval evaluates language models on Polish tasks: PLCC-style open
// questions, multiple choice, false refusals and verbosity, and writes reports.
// The package itself needs no libtorch; the in-process backend lives in a
// subpackage that does.
package eval
