package cloudprovider

import "k8s.io/apimachinery/pkg/types"

// SetBatchHook makes every attempt of a batch's decision on s call hook first, with the number
// of calls in the batch.
func SetBatchHook(s *Server, hook func(calls int)) { s.commits.hook.Store(&hook) }

// Queued is how many calls on the group wait for the next ledger write of s.
func Queued(s *Server, ns, name string) int {
	s.commits.mu.Lock()
	defer s.commits.mu.Unlock()
	if q := s.commits.groups[types.NamespacedName{Namespace: ns, Name: name}]; q != nil {
		return len(q.waiting)
	}
	return 0
}
