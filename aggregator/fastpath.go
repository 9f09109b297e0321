package aggregator

import (
	"net/http"
	"regexp"
	"slices"

	"github.com/gorilla/mux"
)

// exactRoutes serves GET and HEAD on fixed paths (/telemetry/GetMetric,
// /metrics, /-/ready, ...) from a map, and hands every other request to the
// router. gorilla/mux tries each route's regular expression in turn and
// copies the request twice to put the route in its context; on a 300 ns
// GetMetric that was a tenth of the server's time. The handlers are the
// router's own (instrumented) ones, so the answers are the same either way.
type exactRoutes struct {
	exact  map[string]http.Handler
	router *mux.Router
}

func (e *exactRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if h, ok := e.exact[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
	}
	e.router.ServeHTTP(w, r)
}

// newExactRoutes collects the router's routes that match one fixed path
// and only GET and HEAD: no variables, no prefix, no other method that
// the map would have to turn away.
func newExactRoutes(router *mux.Router) *exactRoutes {
	e := &exactRoutes{exact: map[string]http.Handler{}, router: router}
	_ = router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		re, err := route.GetPathRegexp()
		methods, _ := route.GetMethods()
		if err != nil || re != "^"+regexp.QuoteMeta(tpl)+"$" || len(methods) == 0 ||
			slices.ContainsFunc(methods, func(m string) bool { return m != http.MethodGet && m != http.MethodHead }) {
			return nil
		}
		if _, taken := e.exact[tpl]; !taken && route.GetHandler() != nil {
			e.exact[tpl] = route.GetHandler()
		}
		return nil
	})
	return e
}
