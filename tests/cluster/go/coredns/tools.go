//go:build tools

// Package tools pins CoreDNS (package main at the root of
// github.com/coredns/coredns) so that `go build github.com/coredns/coredns`
// from this module builds the exact version in go.mod.
package tools

import _ "github.com/coredns/coredns"
