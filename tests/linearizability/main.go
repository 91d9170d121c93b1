// Command linearizability checks histories recorded by `kvclient load --history` with
// Porcupine: every key must behave as one register (get, put, compare-and-set) whose
// operations each take effect at one instant between their call and their return.
//
// usage: linearizability [-timeout 60s] [-html FILE] HISTORY...
// Exit 0: linearizable. Exit 1: not linearizable (a visualization of the longest
// linearizable prefixes goes to -html). Exit 2: bad input. Exit 3: not decided within the
// timeout (neither verdict: a longer timeout may decide it).
//
// Writes whose outcome is unknown and whose value nobody read are first set aside (see
// reduce.go); only when the rest is not linearizable is the whole history checked.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "give up (and fail) after this long")
	html := flag.String("html", "", "write a visualization here when the check fails")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: linearizability [-timeout 60s] [-html FILE] HISTORY...")
		os.Exit(2)
	}
	worst := porcupine.Ok
	for _, path := range flag.Args() {
		result, err := check(path, *timeout, *html)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		if result == porcupine.Illegal || (result == porcupine.Unknown && worst == porcupine.Ok) {
			worst = result
		}
	}
	switch worst {
	case porcupine.Illegal:
		os.Exit(1)
	case porcupine.Unknown:
		os.Exit(3)
	}
}

func check(path string, timeout time.Duration, html string) (porcupine.CheckResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return porcupine.Unknown, err
	}
	defer f.Close()
	ops, err := Operations(f)
	if err != nil {
		return porcupine.Unknown, err
	}
	started := time.Now()
	result, info, aside := Decide(ops, timeout)
	note := ""
	if aside > 0 {
		note = fmt.Sprintf(" (%d unknown writes nobody read set aside)", aside)
	}
	fmt.Printf("%s: %d operations on %d keys: %s%s (%.1fs)\n", path, len(ops), len(partition(ops)), verdict(result), note, time.Since(started).Seconds())
	if result == porcupine.Ok {
		return result, nil
	}
	if html != "" {
		if err := porcupine.VisualizePath(Model, info, html); err != nil {
			return result, fmt.Errorf("visualization: %w", err)
		}
		fmt.Printf("visualization: %s\n", html)
	}
	return result, nil
}

// Decide checks ops, first without the unknown writes nobody read (reduce.go), then whole
// when that smaller history is not linearizable. aside counts the writes set aside when the
// verdict came from the smaller history, else 0.
func Decide(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo, int) {
	if reduced, aside := WithoutUnobservedUnknownWrites(ops); aside > 0 {
		if result, info := porcupine.CheckOperationsVerbose(Model, reduced, timeout); result == porcupine.Ok {
			return result, info, aside
		}
	}
	result, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	return result, info, 0
}

func verdict(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	default:
		return "undecided within the timeout"
	}
}
