// Package machines holds the read-side rules every part of the manager shares about Machines: which
// Node a Machine stands for and which Machines a Node belongs to, a Group's effective size limits,
// and a Machine's effective spec with its Group's machineDefaults applied. The controllers, the
// cloud-provider server and homelabctl import it; it imports none of them, so no two of them can
// drift apart on these rules.
package machines
