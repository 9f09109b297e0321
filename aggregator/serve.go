package aggregator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish
// after SIGTERM before the server closes them.
const ShutdownTimeout = 10 * time.Second

// ListenAndServe polls the source and serves the endpoints on the addresses
// of flags (TLS and basic auth from --web.config.file) until ctx is done;
// then it stops polling, lets in-flight requests finish and returns nil.
func (a *Aggregator) ListenAndServe(ctx context.Context, flags *web.FlagConfig) error {
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "Fabric telemetry aggregator",
		Description: "Switch counters from a telemetry source as REST answers, Prometheus metrics and PromQL queries",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/telemetry/ListMetrics", Text: "ListMetrics", Description: "every switch's latest values"},
			{Address: "/api/v1/query?query=up", Text: "Query API", Description: "Prometheus-compatible HTTP API"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
	if err != nil {
		return fmt.Errorf("landing page: %w", err)
	}
	a.router.Handle("/", landing).Methods(http.MethodGet, http.MethodHead)
	a.instrumentRoutes()
	srv := &http.Server{
		Handler:           newExactRoutes(a.router),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // above any query timeout
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}

	pollCtx, stopPolling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(pollCtx) })
	defer func() { stopPolling(); wg.Wait() }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, flags, a.cfg.Logger) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	a.cfg.Logger.Info("Shutting down: polling stopped, finishing in-flight requests", "timeout", ShutdownTimeout)
	stopPolling()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}
