package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/credsign/credsign/agent"
)

func publish(ctx context.Context, t *testing.T, a *agent.Agent, topic, payload string) {
	t.Helper()
	if err := a.Publish(ctx, topic, []byte(payload), 1); err != nil {
		t.Fatal(fmt.Errorf("publish %q: %w", payload, err))
	}
}
