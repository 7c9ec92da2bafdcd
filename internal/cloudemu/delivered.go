package cloudemu

import (
	"context"
	"fmt"
	"slices"
)

// WaitDelivered blocks until every payload in sent has reached the broker
// (a QoS 1 PUBLISH is acknowledged a moment before it is recorded) or ctx
// is done; the error then names a payload that did not arrive.
func (e *Emulator) WaitDelivered(ctx context.Context, sent []string) (State, error) {
	missing := ""
	s, err := e.Wait(ctx, func(s State) bool {
		got := make([]string, 0, len(s.Messages))
		for _, m := range s.Messages {
			got = append(got, string(m.Payload))
		}
		for _, m := range sent {
			if !slices.Contains(got, m) {
				missing = m
				return false
			}
		}
		return true
	})
	if err != nil {
		return s, fmt.Errorf("cloudemu: message %q of %d not delivered: %w", missing, len(sent), err)
	}
	return s, nil
}
