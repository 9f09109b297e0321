package queryapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/promql/parser"
)

// formatQuery answers /api/v1/format_query: the query, parsed and printed
// back by the PromQL parser's pretty printer, as Prometheus does.
func (a *API) formatQuery(r *http.Request) result {
	expr, apiErr := a.parseQueryParam(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	return result{data: expr.Pretty(0)}
}

// parseQuery answers /api/v1/parse_query: the syntax tree of the query in
// the JSON form Prometheus 3 gives it (its web UI's tree view reads it).
func (a *API) parseQuery(r *http.Request) result {
	expr, apiErr := a.parseQueryParam(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	tree, err := astNode(expr)
	if err != nil {
		return result{err: &apiError{errorInternal, err}}
	}
	return result{data: tree}
}

func (a *API) parseQueryParam(r *http.Request) (parser.Expr, *apiError) {
	qs, apiErr := a.queryText(r)
	if apiErr != nil {
		return nil, apiErr
	}
	expr, err := a.parser.ParseExpr(qs)
	if err != nil {
		return nil, invalidParam(err, "query")
	}
	return expr, nil
}

// The nodes of the tree. Each has its Prometheus field names; a field
// Prometheus may leave empty is an `any` or a pointer, which is null then.
type (
	aggregationNode struct {
		Type     string   `json:"type"`
		Op       string   `json:"op"`
		Expr     any      `json:"expr"`
		Param    any      `json:"param"`
		Grouping []string `json:"grouping"`
		Without  bool     `json:"without"`
	}
	binaryNode struct {
		Type     string        `json:"type"`
		Op       string        `json:"op"`
		LHS      any           `json:"lhs"`
		RHS      any           `json:"rhs"`
		Matching *matchingNode `json:"matching"`
		Bool     bool          `json:"bool"`
	}
	matchingNode struct {
		Card       string     `json:"card"`
		Labels     []string   `json:"labels"`
		On         bool       `json:"on"`
		Include    []string   `json:"include"`
		FillValues fillValues `json:"fillValues"`
	}
	fillValues struct {
		LHS *float64 `json:"lhs"`
		RHS *float64 `json:"rhs"`
	}
	callNode struct {
		Type string   `json:"type"`
		Func funcNode `json:"func"`
		Args []any    `json:"args"`
	}
	funcNode struct {
		Name       string             `json:"name"`
		ArgTypes   []parser.ValueType `json:"argTypes"`
		Variadic   int                `json:"variadic"`
		ReturnType parser.ValueType   `json:"returnType"`
	}
	vectorSelectorNode struct {
		Type       string        `json:"type"`
		Name       string        `json:"name"`
		Offset     int64         `json:"offset"`
		OffsetExpr any           `json:"offsetExpr"`
		Matchers   []matcherNode `json:"matchers"`
		Timestamp  *int64        `json:"timestamp"`
		StartOrEnd any           `json:"startOrEnd"`
		Anchored   bool          `json:"anchored"`
		Smoothed   bool          `json:"smoothed"`
	}
	matrixSelectorNode struct {
		vectorSelectorNode
		Range     int64 `json:"range"`
		RangeExpr any   `json:"rangeExpr"`
	}
	matcherNode struct {
		Name  string `json:"name"`
		Value string `json:"value"`
		Type  string `json:"type"`
	}
	subqueryNode struct {
		Type       string `json:"type"`
		Expr       any    `json:"expr"`
		Range      int64  `json:"range"`
		RangeExpr  any    `json:"rangeExpr"`
		Offset     int64  `json:"offset"`
		OffsetExpr any    `json:"offsetExpr"`
		Step       int64  `json:"step"`
		StepExpr   any    `json:"stepExpr"`
		Timestamp  *int64 `json:"timestamp"`
		StartOrEnd any    `json:"startOrEnd"`
	}
	durationNode struct {
		Type    string `json:"type"`
		Op      string `json:"op"`
		LHS     any    `json:"lhs"`
		RHS     any    `json:"rhs"`
		Wrapped bool   `json:"wrapped"`
	}
	numberNode struct {
		Type string `json:"type"`
		Val  string `json:"val"`
	}
	// durationNumberNode is a number inside a duration expression, which
	// says whether it was written as a duration (5m) or a number.
	durationNumberNode struct {
		numberNode
		Duration bool `json:"duration"`
	}
	stringNode struct {
		Type string `json:"type"`
		Val  string `json:"val"`
	}
	parenNode struct {
		Type string `json:"type"`
		Expr any    `json:"expr"`
	}
	unaryNode struct {
		Type string `json:"type"`
		Op   string `json:"op"`
		Expr any    `json:"expr"`
	}
)

// astNode returns the tree of e; an expression the parser does not make
// (the engine's own wrappers) is an error.
func astNode(e parser.Expr) (any, error) {
	if e == nil {
		return nil, nil
	}
	var (
		n   any
		err error
	)
	// child converts a subexpression, keeping the first error.
	child := func(e parser.Expr) any {
		if err != nil {
			return nil
		}
		var c any
		c, err = astNode(e)
		return c
	}
	switch e := e.(type) {
	case *parser.AggregateExpr:
		n = aggregationNode{Type: "aggregation", Op: e.Op.String(), Expr: child(e.Expr), Param: child(e.Param),
			Grouping: orEmpty(e.Grouping), Without: e.Without}
	case *parser.BinaryExpr:
		b := binaryNode{Type: "binaryExpr", Op: e.Op.String(), LHS: child(e.LHS), RHS: child(e.RHS), Bool: e.ReturnBool}
		if m := e.VectorMatching; m != nil {
			b.Matching = &matchingNode{Card: m.Card.String(), Labels: orEmpty(m.MatchingLabels), On: m.On,
				Include: orEmpty(m.Include), FillValues: fillValues{LHS: m.FillValues.LHS, RHS: m.FillValues.RHS}}
		}
		n = b
	case *parser.Call:
		c := callNode{Type: "call", Args: []any{},
			Func: funcNode{Name: e.Func.Name, ArgTypes: e.Func.ArgTypes, Variadic: e.Func.Variadic, ReturnType: e.Func.ReturnType}}
		for _, arg := range e.Args {
			c.Args = append(c.Args, child(arg))
		}
		n = c
	case *parser.MatrixSelector:
		vs, ok := e.VectorSelector.(*parser.VectorSelector)
		if !ok {
			return nil, fmt.Errorf("matrix selector over %T", e.VectorSelector)
		}
		n = matrixSelectorNode{vectorSelectorNode: selectorNode("matrixSelector", vs),
			Range: e.Range.Milliseconds(), RangeExpr: durationTree(e.RangeExpr)}
	case *parser.SubqueryExpr:
		n = subqueryNode{Type: "subquery", Expr: child(e.Expr),
			Range: e.Range.Milliseconds(), RangeExpr: durationTree(e.RangeExpr),
			Offset: e.OriginalOffset.Milliseconds(), OffsetExpr: durationTree(e.OriginalOffsetExpr),
			Step: e.Step.Milliseconds(), StepExpr: durationTree(e.StepExpr),
			Timestamp: e.Timestamp, StartOrEnd: startOrEnd(e.StartOrEnd)}
	case *parser.DurationExpr:
		n = durationTree(e)
	case *parser.NumberLiteral:
		n = numberNode{Type: "numberLiteral", Val: formatNumber(e.Val)}
	case *parser.ParenExpr:
		n = parenNode{Type: "parenExpr", Expr: child(e.Expr)}
	case *parser.StringLiteral:
		n = stringNode{Type: "stringLiteral", Val: e.Val}
	case *parser.UnaryExpr:
		n = unaryNode{Type: "unaryExpr", Op: e.Op.String(), Expr: child(e.Expr)}
	case *parser.VectorSelector:
		n = selectorNode("vectorSelector", e)
	default:
		return nil, fmt.Errorf("unsupported node type %T", e)
	}
	return n, err
}

func selectorNode(typ string, vs *parser.VectorSelector) vectorSelectorNode {
	ms := make([]matcherNode, 0, len(vs.LabelMatchers))
	for _, m := range vs.LabelMatchers {
		ms = append(ms, matcherNode{Name: m.Name, Value: m.Value, Type: m.Type.String()})
	}
	return vectorSelectorNode{Type: typ, Name: vs.Name,
		Offset: vs.OriginalOffset.Milliseconds(), OffsetExpr: durationTree(vs.OriginalOffsetExpr),
		Matchers: ms, Timestamp: vs.Timestamp, StartOrEnd: startOrEnd(vs.StartOrEnd),
		Anchored: vs.Anchored, Smoothed: vs.Smoothed}
}

// durationTree is the tree of a duration expression (the range, offset or
// step of a selector or subquery), null when there is none.
func durationTree(e parser.Expr) any {
	switch e := e.(type) {
	case nil:
		return nil
	case *parser.DurationExpr:
		if e == nil {
			return nil
		}
		return durationNode{Type: "durationExpr", Op: e.Op.String(),
			LHS: durationTree(e.LHS), RHS: durationTree(e.RHS), Wrapped: e.Wrapped}
	case *parser.NumberLiteral:
		if e == nil {
			return nil
		}
		return durationNumberNode{numberNode: numberNode{Type: "numberLiteral", Val: formatNumber(e.Val)}, Duration: e.Duration}
	}
	n, err := astNode(e)
	if err != nil {
		return nil
	}
	return n
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func startOrEnd(t parser.ItemType) any {
	if t == 0 {
		return nil
	}
	return t.String()
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
