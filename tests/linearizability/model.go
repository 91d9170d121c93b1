package main

// The sequential specification of one key: a register that is absent or holds a value,
// with get, put and compare-and-set (the store's If-Match / If-None-Match writes). Values
// are unique per write, so "the version read" and "the value read" name the same state.

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// state is the key's value; nil when absent. A string copy keeps states comparable.
type state struct {
	present bool
	value   string
}

func stateOf(v *string) state {
	if v == nil {
		return state{}
	}
	return state{present: true, value: *v}
}

func step(s interface{}, input interface{}, output interface{}) (bool, interface{}) {
	st := s.(state)
	in := input.(Input)
	out := output.(Output)
	switch in.Op {
	case "get":
		return st == stateOf(out.Found), st
	case "put":
		return true, stateOf(in.Value)
	case "cas":
		matches := st == stateOf(in.Expected)
		switch {
		case out.Unknown:
			// Applied if and only if the precondition held when it took effect.
			if matches {
				return true, stateOf(in.Value)
			}
			return true, st
		case out.Applied:
			return matches, stateOf(in.Value)
		default:
			return !matches, st
		}
	}
	return false, st
}

func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(Input).Key
		if _, seen := byKey[k]; !seen {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	parts := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, byKey[k])
	}
	return parts
}

func show(v *string) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%q", *v)
}

// Model is the register of every key, partitioned by key.
var Model = porcupine.Model{
	Partition: partition,
	Init:      func() interface{} { return state{} },
	Step:      step,
	DescribeOperation: func(input interface{}, output interface{}) string {
		in := input.(Input)
		out := output.(Output)
		switch in.Op {
		case "get":
			return fmt.Sprintf("get(%s) -> %s", in.Key, show(out.Found))
		case "put":
			if out.Unknown {
				return fmt.Sprintf("put(%s, %s) -> ?", in.Key, show(in.Value))
			}
			return fmt.Sprintf("put(%s, %s)", in.Key, show(in.Value))
		default:
			verdict := map[bool]string{true: "ok", false: "refused"}[out.Applied]
			if out.Unknown {
				verdict = "?"
			}
			return fmt.Sprintf("cas(%s, %s -> %s) %s", in.Key, show(in.Expected), show(in.Value), verdict)
		}
	},
	DescribeState: func(s interface{}) string {
		st := s.(state)
		if !st.present {
			return "absent"
		}
		return fmt.Sprintf("%q", st.value)
	},
}
