package main

import (
	"context"
	"fmt"
	"os"
	"time"

	remote "k8s.io/cri-client/pkg"
)

// criCleanup stops and removes every container and pod sandbox known to the
// CRI runtime at endpoint (used by tests/cluster/down.sh after kubelet is
// stopped). Going through CRI, not killing processes, lets containerd run the
// CNI DEL for each sandbox, so veths, netns mounts and host-local IPs are freed.
func criCleanup(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kube cri-cleanup unix:///path/to/containerd.sock")
		return 2
	}
	rs, err := remote.NewRemoteRuntimeService(args[0], 10*time.Second, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-cleanup:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	failed := 0
	ctrs, err := rs.ListContainers(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-cleanup: list containers:", err)
		return 1
	}
	for _, c := range ctrs {
		if err := rs.StopContainer(ctx, c.Id, 0); err != nil {
			fmt.Fprintln(os.Stderr, "cri-cleanup: stop container", c.Id, err)
		}
		if err := rs.RemoveContainer(ctx, c.Id); err != nil {
			fmt.Fprintln(os.Stderr, "cri-cleanup: remove container", c.Id, err)
			failed++
		}
	}
	sbs, err := rs.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-cleanup: list sandboxes:", err)
		return 1
	}
	for _, s := range sbs {
		if err := rs.StopPodSandbox(ctx, s.Id); err != nil {
			fmt.Fprintln(os.Stderr, "cri-cleanup: stop sandbox", s.Id, err)
		}
		if err := rs.RemovePodSandbox(ctx, s.Id); err != nil {
			fmt.Fprintln(os.Stderr, "cri-cleanup: remove sandbox", s.Id, err)
			failed++
		}
	}
	fmt.Printf("cri-cleanup: removed %d containers, %d sandboxes, %d failures\n", len(ctrs), len(sbs), failed)
	if failed > 0 {
		return 1
	}
	return 0
}
