package main

// Setting aside unknown writes nobody read. A write whose outcome is unknown never returns
// (Return = MaxInt64), so a linearization may place it after every other operation, where it
// changes nothing anyone saw. Hence a history without some of its unknown writes that is
// linearizable proves the whole history linearizable: the checker tries that smaller
// history first. Each unknown write left in multiplies the orders Porcupine must try, and a
// fault that times out a hundred writes can leave the whole history undecided. The converse
// does not hold (a set-aside write may be what explains a refused compare-and-set), so a
// smaller history that fails proves nothing and the whole one is checked.

import "github.com/anishathalye/porcupine"

// WithoutUnobservedUnknownWrites drops every put or cas of unknown outcome whose value no
// read returned and no cas expected, and says how many it dropped.
func WithoutUnobservedUnknownWrites(ops []porcupine.Operation) ([]porcupine.Operation, int) {
	observed := map[string]map[string]bool{}
	see := func(key string, v *string) {
		if v == nil {
			return
		}
		if observed[key] == nil {
			observed[key] = map[string]bool{}
		}
		observed[key][*v] = true
	}
	for _, op := range ops {
		in := op.Input.(Input)
		out := op.Output.(Output)
		switch in.Op {
		case "get":
			see(in.Key, out.Found)
		case "cas":
			see(in.Key, in.Expected)
		}
	}
	kept := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in := op.Input.(Input)
		out := op.Output.(Output)
		if out.Unknown && in.Value != nil && !observed[in.Key][*in.Value] {
			continue
		}
		kept = append(kept, op)
	}
	return kept, len(ops) - len(kept)
}
