package buildchain

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// function is one top-level C++ function definition of gotch's generated
// file: its name, return type and the line range (1-based, inclusive) from
// its signature to its closing brace.
type function struct {
	name       string
	returnType string
	first      int
	last       int
}

// funcStart matches the first line of a generated function definition:
// "void atg_abs(tensor *out__, tensor self) {".
var funcStart = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*(?:\s*\*)?)\s+(atg_[A-Za-z0-9_]+)\(`)

// parseFunctions finds the function definitions of a generated source file.
// A definition starts at a column-0 signature and ends at the next line that
// is exactly "}".
func parseFunctions(src []byte) ([]function, error) {
	var funcs []function
	lines := bytes.Split(src, []byte("\n"))
	open := -1
	for i, line := range lines {
		if m := funcStart.FindSubmatch(line); m != nil {
			if open >= 0 {
				return nil, fmt.Errorf("line %d: function %s starts before %s ends", i+1, m[2], funcs[open].name)
			}
			funcs = append(funcs, function{name: string(m[2]), returnType: string(bytes.TrimSpace(m[1])), first: i + 1})
			open = len(funcs) - 1
			continue
		}
		if open >= 0 && string(bytes.TrimRight(line, "\r")) == "}" {
			funcs[open].last = i + 1
			open = -1
		}
	}
	if open >= 0 {
		return nil, fmt.Errorf("function %s has no closing brace", funcs[open].name)
	}
	return funcs, nil
}

// FailingFunctions reads a compiler log (GCC or Clang) of a compile that
// included the generated file named fileName (its base name as the compiler
// prints it) and returns the names of the generated functions the log points
// into, sorted. Any diagnostic or "required from here" location inside a
// function's lines counts, so errors reported deep inside libtorch's headers
// are traced back to the generated call that caused them. A log that points
// into the generated file outside every function is an error: stubbing could
// not fix it.
func FailingFunctions(log []byte, fileName string, src []byte) ([]string, error) {
	funcs, err := parseFunctions(src)
	if err != nil {
		return nil, fmt.Errorf("buildchain: parsing %s: %w", fileName, err)
	}
	loc := regexp.MustCompile(`(?m)(?:^|[\s/])` + regexp.QuoteMeta(fileName) + `:(\d+):(?:\d+:)?`)
	found := map[string]bool{}
	for _, m := range loc.FindAllSubmatch(log, -1) {
		line, err := strconv.Atoi(string(m[1]))
		if err != nil {
			continue
		}
		i := sort.Search(len(funcs), func(i int) bool { return funcs[i].last >= line })
		if i == len(funcs) || funcs[i].first > line {
			return nil, fmt.Errorf("buildchain: %s:%d: compiler reports an error outside any generated function", fileName, line)
		}
		found[funcs[i].name] = true
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// StubMessage is the error a stubbed function reports through gotch's error
// path.
func StubMessage(name string) string {
	return name + ": not available in the linked libtorch"
}

// StubFunctions replaces the body of each named generated function with one
// that sets gotch's last error to StubMessage and returns a zero value, so
// the Go wrapper returns that error instead of the package failing to build.
// It returns the new source and an error naming any function not found.
func StubFunctions(src []byte, names []string) ([]byte, error) {
	funcs, err := parseFunctions(src)
	if err != nil {
		return nil, fmt.Errorf("buildchain: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	lines := bytes.Split(src, []byte("\n"))
	var out bytes.Buffer
	next := 0 // first line index (0-based) not yet copied
	for _, f := range funcs {
		if !want[f.name] {
			continue
		}
		delete(want, f.name)
		for _, l := range lines[next : f.first-1] {
			out.Write(l)
			out.WriteByte('\n')
		}
		out.Write(lines[f.first-1]) // the signature line, ending in "{"
		fmt.Fprintf(&out, "\n  torch_last_err = strdup(%q);\n", StubMessage(f.name))
		if f.returnType != "void" {
			out.WriteString("  return 0;\n")
		}
		out.WriteString("}\n")
		next = f.last
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for n := range want {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("buildchain: functions not found in the generated source: %v", missing)
	}
	out.Write(bytes.Join(lines[next:], []byte("\n")))
	return out.Bytes(), nil
}
