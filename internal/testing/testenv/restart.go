package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartRestartable is Start for a control plane whose kube-apiserver a test may stop and start
// again (RestartAPIServer): its certificates live in a folder the Env owns, so the restarted
// apiserver serves on the same port with the same serving certificate and client CA, and
// clients made before the restart (kubeconfigs written by WriteKubeconfig included) reconnect
// by themselves. etcd keeps running, with every object.
func StartRestartable() (*Env, error) {
	dir, err := os.MkdirTemp("", "homelab-autoscaler-apiserver-")
	if err != nil {
		return nil, err
	}
	e, err := start(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e.certDir = dir
	return e, nil
}

// RunRestartable is Run with StartRestartable.
func RunRestartable(m *testing.M, set func(*Env)) { run(m, StartRestartable, set) }

// StopAPIServer stops the kube-apiserver with SIGKILL, as a crashed or evicted apiserver goes
// (a graceful stop waits for every open watch, tens of seconds); etcd and its data stay.
// StartAPIServer brings it back.
func (e *Env) StopAPIServer() error {
	if e.certDir == "" {
		return errors.New("this control plane was not started with StartRestartable")
	}
	pid, err := e.apiserverPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing the kube-apiserver (pid %d): %w", pid, err)
	}
	// envtest notices the exit when its wait returns; until then its Stop would signal again.
	if Poll(10*time.Second, 50*time.Millisecond, func() bool {
		err = e.env.ControlPlane.APIServer.Stop()
		return err == nil
	}) {
		return nil
	}
	return fmt.Errorf("the killed kube-apiserver did not exit: %w", err)
}

// apiserverPID finds this Env's kube-apiserver by its certificate folder, which no other
// process names.
func (e *Env) apiserverPID() (int, error) {
	want := "--cert-dir=" + e.certDir
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == want {
				return pid, nil
			}
		}
	}
	return 0, errors.New("the kube-apiserver process was not found (is it running?)")
}

// StartAPIServer starts the kube-apiserver stopped by StopAPIServer, on the same port with the
// same certificates, and returns once it is healthy.
func (e *Env) StartAPIServer() error {
	if e.certDir == "" {
		return errors.New("this control plane was not started with StartRestartable")
	}
	if err := e.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting the kube-apiserver again: %w", err)
	}
	return nil
}

// RestartAPIServer stops the kube-apiserver, keeps it down for down, and starts it again.
func (e *Env) RestartAPIServer(down time.Duration) error {
	if err := e.StopAPIServer(); err != nil {
		return err
	}
	time.Sleep(down)
	return e.StartAPIServer()
}
