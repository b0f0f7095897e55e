package topics

import (
	"strings"
	"testing"
)

func TestRisks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		replication int
		isr         string
		warn        bool
	}{{3, "1", true}, {3, "2", false}, {1, "1", false}, {2, "1", false}, {5, "1", true}, {3, "", false}} {
		got := risks(tc.replication, map[string]string{"min.insync.replicas": tc.isr})
		if (len(got) == 1 && strings.Contains(got[0], "min.insync.replicas")) != tc.warn || len(got) > 1 {
			t.Errorf("replication %d, min.insync.replicas %q: %q", tc.replication, tc.isr, got)
		}
	}
}
