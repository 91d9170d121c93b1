//go:build tools

// Package tools pins the etcd server (package main at the module root of
// go.etcd.io/etcd/server/v3) so that `go build go.etcd.io/etcd/server/v3`
// from this module builds the exact version in go.mod.
package tools

import _ "go.etcd.io/etcd/server/v3"
