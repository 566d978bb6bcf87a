package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/claude-usage/widget/shared"
)

// testReserveAccount: an account with versions is admitted whatever the
// bound, a new one while there is room, and one more is ACCOUNT_LIMIT;
// a released reservation that stored nothing takes no place.
func testReserveAccount(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	mustSave(t, s, Snap("default", T0, 1))
	cases := []struct {
		name    string
		account string
		max     int
		want    shared.Code
	}{
		{"a known account at the bound", "default", 1, ""},
		{"a new account with room", "work", 2, ""},
		{"the same again: nothing was stored", "work", 2, ""},
		{"a new account at the bound", "work", 1, shared.CodeAccountLimit},
	}
	for _, tc := range cases {
		release, err := s.ReserveAccount(ctx, tc.account, tc.max)
		if got := CodeOf(err); got != tc.want {
			t.Errorf("%s: ReserveAccount = %v, want code %q", tc.name, err, tc.want)
		}
		if err != nil {
			if !strings.Contains(err.Error(), `"`+tc.account+`"`) {
				t.Errorf("%s: message %q does not name the account", tc.name, err)
			}
			continue
		}
		release()
	}
}
