package tokenize

import (
	"fmt"
	"sort"
)

// PackPlan is Pack on lengths alone: it returns, for each row, the indices
// of the sequences placed in it, in the order Pack appends them. A caller
// holding sequences elsewhere (a token store on disk) packs them exactly as
// Pack would without loading them.
func PackPlan(lengths []int, rowLen int) ([][]int, error) {
	if rowLen <= 0 {
		return nil, fmt.Errorf("tokenize: pack: row length %d must be positive", rowLen)
	}
	order := make([]int, len(lengths))
	for i, n := range lengths {
		switch {
		case n <= 0:
			return nil, fmt.Errorf("tokenize: pack: sequence %d is empty", i)
		case n > rowLen:
			return nil, fmt.Errorf("tokenize: pack: sequence %d has %d tokens, more than the row length %d", i, n, rowLen)
		}
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return lengths[order[a]] > lengths[order[b]] })
	var rows [][]int
	var used []int
	free := newFreeIndex(rowLen)
	for _, i := range order {
		n := lengths[i]
		r, ok := free.take(n)
		if !ok {
			r = len(rows)
			rows = append(rows, nil)
			used = append(used, 0)
		}
		rows[r] = append(rows[r], i)
		used[r] += n
		if left := rowLen - used[r]; left > 0 {
			free.put(left, r)
		}
	}
	return rows, nil
}
