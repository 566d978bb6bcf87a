// Package storetest is the conformance suite of store.Store: every
// guarantee that is about behaviour, not about files or tables (ordering,
// numbering, idempotency across restarts, retention, scraper reports,
// error codes), run the same way against each backend.
package storetest

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Options are the store options a test sets; zero takes the defaults.
type Options struct {
	RetentionVersions int
	RetentionDays     int
}

// Backend tells the suite how to make stores of one kind.
type Backend struct {
	// New returns a fresh, empty location (a directory, a database).
	New func(t *testing.T) string
	// Open opens a store on loc; the same loc gives the same data. The
	// suite closes what it opens (Close twice must be harmless).
	Open func(t *testing.T, loc string, o Options) store.Store
	// Retain runs the store's retention now and returns when it is done.
	Retain func(t *testing.T, s store.Store)
	// Shared is true when two stores open on one loc at once are
	// supported (replicas); the suite then checks them together.
	Shared bool
}

// Run runs the suite; each test is a parallel subtest.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		f    func(t *testing.T, b Backend)
	}{
		{"SaveAndRead", testSaveAndRead},
		{"NoDataAndBadAccount", testNoDataAndBadAccount},
		{"Nearest", testNearest},
		{"LateSnapshotKeepsLatest", testLateSnapshotKeepsLatest},
		{"Accounts", testAccounts},
		{"ReserveAccount", testReserveAccount},
		{"NanosecondsKept", testNanoseconds},
		{"ReopenSeesTheSameHistory", testReopen},
		{"Idempotency", testIdempotency},
		{"ConcurrentSameKeyMakesOneVersion", testConcurrentSameKey},
		{"StatusAfterOpen", testStatusAfterOpen},
		{"SaveAfterClose", testSaveAfterClose},
		{"ScraperStatusSurvivesRestart", testScraperStatusSurvivesRestart},
		{"ScraperStatusRefusedKeepsTheOld", testScraperStatusRefused},
		{"RetentionKeepsMaxOfCountAndDays", testRetention},
		{"RetentionForgetsRemovedKeys", testRetentionForgetsKeys},
		{"Series", testSeries},
		{"HistoryOutlivesRetention", testHistoryOutlivesRetention},
		{"AlertStateSurvivesReopen", testAlertStateSurvivesReopen},
		{"PushSubscriptionLimitAndReplace", testPushSubscriptionLimitAndReplace},
		{"DeliveryQueue", testDeliveryQueue},
	}
	if b.Shared {
		tests = append(tests, []struct {
			name string
			f    func(t *testing.T, b Backend)
		}{
			{"TwoInstancesSameKeyMakeOneVersion", testTwoInstancesSameKey},
			{"TwoInstancesShareHistory", testTwoInstancesShareHistory},
			{"AlertClaimedOnceAcrossInstances", testAlertClaimedOnceAcrossInstances},
		}...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, b)
		})
	}
}

// T0 is the suite's reference time: far enough in the past that nothing
// is "in the future", recent enough for default retention to keep it all
// when fewer than 100 versions exist.
var T0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

var idPattern = regexp.MustCompile(`^[0-9a-v]{20}$`)

// open opens a store on loc and closes it at cleanup.
func open(t *testing.T, b Backend, loc string, o Options) store.Store {
	t.Helper()
	s := b.Open(t, loc, o)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func fresh(t *testing.T, b Backend) (store.Store, string) {
	t.Helper()
	loc := b.New(t)
	return open(t, b, loc, Options{}), loc
}

// Snap is testutil.Snap, for the backends' own tests.
func Snap(account string, at time.Time, pct float64) shared.Snapshot {
	return testutil.Snap(account, at, pct)
}

func mustSave(t testing.TB, s store.Store, sn shared.Snapshot) store.Version {
	t.Helper()
	res, err := s.Save(context.Background(), store.SaveRequest{Snapshot: sn})
	if err != nil {
		t.Fatalf("Save(%s): %v", sn.ScrapedAt.Format(time.RFC3339Nano), err)
	}
	return res.Version
}

// CodeOf is testutil.CodeOf, for the backends' own tests.
func CodeOf(err error) shared.Code { return testutil.CodeOf(err) }
