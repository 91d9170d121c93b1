package main

// The history format `kvclient load --history FILE` writes: one JSON object per completed
// operation of the timed phase (see docs/replication.md, "History recorder and checker").

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/anishathalye/porcupine"
)

// Line is one recorded operation.
type Line struct {
	Client int    `json:"client"`
	Op     string `json:"op"` // get, put or cas
	Key    string `json:"key"`
	// Value put, or the new value of a cas.
	Value *string `json:"value"`
	// Expected is the value a cas required (null: the key absent).
	Expected *string `json:"expected"`
	// Call and Return are nanoseconds on one monotonic clock shared by every client.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Outcome is ok, fail (definitely not applied: a 4xx, or a cas whose precondition
	// failed) or unknown (a timeout, a 5xx, a broken connection: it may have been applied).
	Outcome string `json:"outcome"`
	// Found is what a get read (null: absent).
	Found *string `json:"found"`
}

// Input is what an operation asked.
type Input struct {
	Op       string
	Key      string
	Value    *string
	Expected *string
}

// Output is what it was answered.
type Output struct {
	// Applied: a put or cas took effect; false for a cas refused by its precondition.
	Applied bool
	// Unknown: a put or cas may or may not have taken effect.
	Unknown bool
	Found   *string
}

// Operations decodes a history into porcupine operations. Reads without an answer say
// nothing and are dropped, as are writes refused outright; a write whose outcome is unknown
// may take effect at any time after its call, so it never returns (Return = MaxInt64).
func Operations(r io.Reader) ([]porcupine.Operation, error) {
	var ops []porcupine.Operation
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; scanner.Scan(); n++ {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		var l Line
		if err := json.Unmarshal(scanner.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		op, keep, err := operation(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if keep {
			ops = append(ops, op)
		}
	}
	return ops, scanner.Err()
}

func operation(l Line) (porcupine.Operation, bool, error) {
	in := Input{Op: l.Op, Key: l.Key, Value: l.Value, Expected: l.Expected}
	op := porcupine.Operation{ClientId: l.Client, Input: in, Call: l.Call, Return: l.Return}
	if l.Return < l.Call {
		return op, false, fmt.Errorf("returns (%d) before its call (%d)", l.Return, l.Call)
	}
	switch l.Op {
	case "get":
		if l.Outcome != "ok" {
			return op, false, nil
		}
		op.Output = Output{Found: l.Found}
	case "put", "cas":
		if l.Value == nil {
			return op, false, fmt.Errorf("a %s without a value", l.Op)
		}
		switch l.Outcome {
		case "ok":
			op.Output = Output{Applied: true}
		case "fail":
			if l.Op == "put" {
				return op, false, nil
			}
			op.Output = Output{Applied: false}
		case "unknown":
			op.Output = Output{Unknown: true}
			op.Return = math.MaxInt64
		default:
			return op, false, fmt.Errorf("outcome %q is not ok, fail or unknown", l.Outcome)
		}
	default:
		return op, false, fmt.Errorf("op %q is not get, put or cas", l.Op)
	}
	return op, true, nil
}
