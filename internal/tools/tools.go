//go:build tools

// Package tools pins the project's dependencies in go.mod before every
// package that uses them exists, so parallel work never races on go get.
package tools

import (
	_ "github.com/andybalholm/brotli"
	_ "github.com/chromedp/cdproto/network"
	_ "github.com/chromedp/chromedp"
	_ "github.com/gofiber/fiber/v2"
	_ "github.com/gofiber/fiber/v2/middleware/adaptor"
	_ "github.com/gofiber/fiber/v2/middleware/limiter"
	_ "github.com/maxence-charriere/go-app/v10/pkg/app"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/rs/xid"
	_ "github.com/sethvargo/go-retry"
	_ "go.uber.org/goleak"
)
