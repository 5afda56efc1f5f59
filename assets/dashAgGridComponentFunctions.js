/* Cell renderers of the grids (dash-ag-grid reads them from this object by name). */
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

/* A signal's x1 per 100 PY1 at each data cut (value: [[run id, rate or null, flagged], ...]) as a sparkline;
   a cut that flagged the signal is a red dot. */
dagcomponentfuncs.SignalTrend = function (props) {
    var points = (props.value || []).filter(function (p) { return p[1] !== null && p[1] !== undefined; });
    var width = 84, height = 22, pad = 4;
    if (!points.length) {
        return React.createElement("span", {className: "cell-muted"}, "–");
    }
    var top = Math.max.apply(null, points.map(function (p) { return p[1]; })) || 1;
    var step = points.length > 1 ? (width - 2 * pad) / (points.length - 1) : 0;
    var xy = points.map(function (p, i) {
        return [pad + i * step, height - pad - (p[1] / top) * (height - 2 * pad)];
    });
    var title = points.map(function (p) { return "cut " + p[0] + ": " + p[1].toFixed(1) + (p[2] ? " (flagged)" : ""); })
        .join(" · ") + " per 100 PY";
    var children = [React.createElement("title", {key: "t"}, title)];
    if (xy.length > 1) {
        children.push(React.createElement("polyline", {
            key: "l", points: xy.map(function (c) { return c[0] + "," + c[1]; }).join(" "),
            fill: "none", stroke: "#1f4e79", strokeWidth: 1.5
        }));
    }
    xy.forEach(function (c, i) {
        children.push(React.createElement("circle", {
            key: "c" + i, cx: c[0], cy: c[1], r: points[i][2] ? 3.2 : 2.2,
            fill: points[i][2] ? "#b42318" : "#1f4e79"
        }));
    });
    return React.createElement("svg", {width: width, height: height, className: "sparkline", role: "img",
                                       "aria-label": title}, children);
};
