// Command linearizability checks histories recorded by `kvclient load --history` with
// Porcupine: every key must behave as one register (get, put, compare-and-set) whose
// operations each take effect at one instant between their call and their return.
//
// usage: linearizability [-timeout 60s] [-html FILE] HISTORY...
// Exit 0: linearizable. Exit 1: not linearizable, or not decided within the timeout (a
// visualization of the longest linearizable prefixes goes to -html). Exit 2: bad input.
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
	failed := false
	for _, path := range flag.Args() {
		ok, err := check(path, *timeout, *html)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		failed = failed || !ok
	}
	if failed {
		os.Exit(1)
	}
}

func check(path string, timeout time.Duration, html string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ops, err := Operations(f)
	if err != nil {
		return false, err
	}
	started := time.Now()
	result, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	fmt.Printf("%s: %d operations on %d keys: %s (%.1fs)\n", path, len(ops), len(partition(ops)), verdict(result), time.Since(started).Seconds())
	if result == porcupine.Ok {
		return true, nil
	}
	if html != "" {
		if err := porcupine.VisualizePath(Model, info, html); err != nil {
			return false, fmt.Errorf("visualization: %w", err)
		}
		fmt.Printf("visualization: %s\n", html)
	}
	return false, nil
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
