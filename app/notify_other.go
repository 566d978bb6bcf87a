//go:build !(js && wasm)

package app

import (
	"errors"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// On the host (the server's render and go-app's test engine) there is no
// browser: push is unknown and every call fails.

var errNoBrowser = errors.New("not in a browser")

func detectPush() pushSupport { return pushUnknown }

func currentSubscription() (app.NotificationSubscription, bool) {
	return app.NotificationSubscription{}, false
}

func requestPermission() app.NotificationPermission { return app.NotificationNotSupported }

func unsubscribe(string, string) error { return errNoBrowser }

func pushCall(string, string, string, any, any) error { return errNoBrowser }
