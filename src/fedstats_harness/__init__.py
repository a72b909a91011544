"""The test and demo harness: real servers on this machine, never shipped in the wheel.

- `process`: the one child-process supervisor (start, readiness from the child's output
  or by a probe, SIGTERM then SIGKILL, kill -9, restart) every module below runs under.
- `ports`: ports for children that must be told theirs in advance; a refusing port.
- `natsproc`: nats-server on a port it picks, read with its readiness from its log.
- `localnet`: `fedstats node` processes (`NodeProcess`, `LocalNodes`).
- `inprocess`: a node served by uvicorn in a thread, on a socket bound to port 0.
- `controlplane`, `kubelet`, `k8s`, `helm`: etcd + kube-apiserver (+ workers and kwok),
  a stand-in kubelet running the operator's pods as processes, kubectl helpers, helm.
- `agents`, `frames`, `diabetes`, `waiting`, `e2e`: what tests share — stand-in nodes
  around a federation `Agent`, DataFrames, the split diabetes rows, `eventually`, the
  e2e driver.
- `demo`: `fedstats demo`.
"""
