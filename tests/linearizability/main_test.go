package main

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// opsOf decodes a hand-made history of JSON lines.
func opsOf(t *testing.T, lines ...string) []porcupine.Operation {
	t.Helper()
	ops, err := Operations(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// verdictOf checks a hand-made history the way the command does.
func verdictOf(t *testing.T, lines ...string) porcupine.CheckResult {
	t.Helper()
	result, _, _ := Decide(opsOf(t, lines...), 10*time.Second)
	return result
}

func TestSequentialAndOverlappingOperationsAreLinearizable(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"get","key":"k","call":0,"return":1,"outcome":"ok","found":null}`,
		`{"client":0,"op":"put","key":"k","value":"a","call":2,"return":5,"outcome":"ok"}`,
		// Overlaps the put: may see either value.
		`{"client":1,"op":"get","key":"k","call":3,"return":4,"outcome":"ok","found":null}`,
		`{"client":1,"op":"get","key":"k","call":6,"return":7,"outcome":"ok","found":"a"}`,
		`{"client":0,"op":"cas","key":"k","expected":"a","value":"b","call":8,"return":9,"outcome":"ok"}`,
		`{"client":1,"op":"cas","key":"k","expected":"a","value":"c","call":10,"return":11,"outcome":"fail"}`,
		`{"client":1,"op":"get","key":"k","call":12,"return":13,"outcome":"ok","found":"b"}`,
	)
	if got != porcupine.Ok {
		t.Fatalf("want linearizable, got %v", got)
	}
}

func TestAStaleReadIsCaught(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		`{"client":0,"op":"put","key":"k","value":"b","call":2,"return":3,"outcome":"ok"}`,
		// Begins after b was acknowledged, yet reads a: a stale copy answered.
		`{"client":1,"op":"get","key":"k","call":4,"return":5,"outcome":"ok","found":"a"}`,
	)
	if got != porcupine.Illegal {
		t.Fatalf("want illegal, got %v", got)
	}
}

func TestALostAcknowledgedWriteIsCaught(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		`{"client":1,"op":"get","key":"k","call":2,"return":3,"outcome":"ok","found":null}`,
	)
	if got != porcupine.Illegal {
		t.Fatalf("want illegal, got %v", got)
	}
}

func TestACompareAndSetAppliedTwiceIsCaught(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		// Both succeed from the same expected value: only one can have seen "a".
		`{"client":0,"op":"cas","key":"k","expected":"a","value":"b","call":2,"return":5,"outcome":"ok"}`,
		`{"client":1,"op":"cas","key":"k","expected":"a","value":"c","call":3,"return":4,"outcome":"ok"}`,
	)
	if got != porcupine.Illegal {
		t.Fatalf("want illegal, got %v", got)
	}
}

func TestAWriteOfUnknownOutcomeMayOrMayNotHaveTakenEffect(t *testing.T) {
	applied := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"unknown"}`,
		`{"client":1,"op":"get","key":"k","call":5,"return":6,"outcome":"ok","found":"a"}`,
	)
	notApplied := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"unknown"}`,
		`{"client":1,"op":"get","key":"k","call":5,"return":6,"outcome":"ok","found":null}`,
		`{"client":1,"op":"cas","key":"k","expected":"x","value":"b","call":7,"return":8,"outcome":"unknown"}`,
		`{"client":1,"op":"get","key":"k","call":9,"return":10,"outcome":"ok","found":null}`,
	)
	if applied != porcupine.Ok || notApplied != porcupine.Ok {
		t.Fatalf("want both linearizable, got %v and %v", applied, notApplied)
	}
	// But never before its call.
	early := verdictOf(t,
		`{"client":1,"op":"get","key":"k","call":0,"return":1,"outcome":"ok","found":"a"}`,
		`{"client":0,"op":"put","key":"k","value":"a","call":2,"return":3,"outcome":"unknown"}`,
	)
	if early != porcupine.Illegal {
		t.Fatalf("a value read before it was written: want illegal, got %v", early)
	}
}

func TestKeysAreCheckedApart(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"put","key":"a","value":"1","call":0,"return":1,"outcome":"ok"}`,
		`{"client":1,"op":"get","key":"b","call":2,"return":3,"outcome":"ok","found":null}`,
		`{"client":1,"op":"get","key":"a","call":4,"return":5,"outcome":"ok","found":"1"}`,
	)
	if got != porcupine.Ok {
		t.Fatalf("want linearizable, got %v", got)
	}
}

func TestBadLinesAreErrorsNotVerdicts(t *testing.T) {
	for _, line := range []string{
		`{"client":0,"op":"delete","key":"k","call":0,"return":1,"outcome":"ok"}`,
		`{"client":0,"op":"put","key":"k","call":0,"return":1,"outcome":"ok"}`,
		`{"client":0,"op":"put","key":"k","value":"a","call":5,"return":1,"outcome":"ok"}`,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"maybe"}`,
		`not json`,
	} {
		if _, err := Operations(strings.NewReader(line)); err == nil {
			t.Errorf("%s: want an error", line)
		}
	}
}

func TestUnknownWritesNobodyReadAreSetAsideFirst(t *testing.T) {
	lines := []string{
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		`{"client":1,"op":"put","key":"k","value":"b","call":2,"return":3,"outcome":"unknown"}`,
		`{"client":2,"op":"put","key":"k","value":"c","call":2,"return":3,"outcome":"unknown"}`,
		`{"client":0,"op":"get","key":"k","call":4,"return":5,"outcome":"ok","found":"c"}`,
	}
	kept, aside := WithoutUnobservedUnknownWrites(opsOf(t, lines...))
	if aside != 1 || len(kept) != 3 {
		t.Fatalf("want b set aside and c (read) kept, got %d aside, %d kept", aside, len(kept))
	}
	result, _, aside := Decide(opsOf(t, lines...), 10*time.Second)
	if result != porcupine.Ok || aside != 1 {
		t.Fatalf("want linearizable with 1 set aside, got %v with %d", result, aside)
	}
}

func TestASetAsideWriteThatExplainsARefusedCasIsCheckedWhole(t *testing.T) {
	// Without b the cas from "a" must succeed; with b applied before it, its refusal is right.
	lines := []string{
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		`{"client":1,"op":"put","key":"k","value":"b","call":2,"return":3,"outcome":"unknown"}`,
		`{"client":0,"op":"cas","key":"k","expected":"a","value":"c","call":4,"return":5,"outcome":"fail"}`,
	}
	kept, _ := WithoutUnobservedUnknownWrites(opsOf(t, lines...))
	if got := porcupine.CheckOperations(Model, kept); got {
		t.Fatal("the smaller history should not be linearizable on its own")
	}
	result, _, aside := Decide(opsOf(t, lines...), 10*time.Second)
	if result != porcupine.Ok || aside != 0 {
		t.Fatalf("want linearizable from the whole history, got %v with %d set aside", result, aside)
	}
}

func TestAStaleReadAmongUnknownWritesIsStillCaught(t *testing.T) {
	got := verdictOf(t,
		`{"client":0,"op":"put","key":"k","value":"a","call":0,"return":1,"outcome":"ok"}`,
		`{"client":1,"op":"put","key":"k","value":"x","call":0,"return":1,"outcome":"unknown"}`,
		`{"client":0,"op":"put","key":"k","value":"b","call":2,"return":3,"outcome":"ok"}`,
		`{"client":2,"op":"put","key":"k","value":"y","call":2,"return":3,"outcome":"unknown"}`,
		`{"client":1,"op":"get","key":"k","call":4,"return":5,"outcome":"ok","found":"a"}`,
	)
	if got != porcupine.Illegal {
		t.Fatalf("want illegal, got %v", got)
	}
}
