/* Functions the grids' column definitions name (dash-ag-grid reads them from this object). */
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

/* Texts with numbers compared by the numbers' values: dose levels by dose (0.3, 1, 3, 5, 10 mg/kg), as the server
   sorts cohorts (safety_dash.views.ordering.natural_key). */
dagfuncs.naturalCompare = function (a, b) {
    return String(a == null ? "" : a).localeCompare(String(b == null ? "" : b), undefined,
                                                    {numeric: true, sensitivity: "base"});
};
