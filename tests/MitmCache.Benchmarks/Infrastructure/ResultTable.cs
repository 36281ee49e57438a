using System.Globalization;
using System.Text;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>One line of the report: a figure for MitmCache, its baseline from the same run, and the target.</summary>
internal sealed record ResultRow(string Scenario, string Metric, string MitmCache, string Baseline, string Ratio, string Target, string Verdict);

/// <summary>Collects rows as scenarios finish and renders them as one markdown table.</summary>
internal sealed class ResultTable
{
    private readonly List<ResultRow> _rows = [];
    private readonly List<string> _notes = [];

    public IReadOnlyList<ResultRow> Rows => _rows;

    public void Add(ResultRow row)
    {
        _rows.Add(row);
        Console.Error.WriteLine($"  => {row.Scenario} | {row.Metric} | {row.MitmCache} | {row.Baseline} | {row.Ratio} | {row.Target} | {row.Verdict}");
    }

    /// <summary>A row with a ratio (candidate / baseline) checked against a minimum or maximum.</summary>
    public void AddRatio(string scenario, string metric, string mitmCache, string baseline, double ratio, double? atLeast = null, double? atMost = null)
    {
        var target = atLeast is { } min ? $"≥ {F(min)}×" : atMost is { } max ? $"≤ {F(max)}×" : "—";
        var verdict = atLeast is { } lo ? (ratio >= lo ? "holds" : "MISS") : atMost is { } hi ? (ratio <= hi ? "holds" : "MISS") : "—";
        Add(new ResultRow(scenario, metric, mitmCache, baseline, $"{F(ratio)}×", target, verdict));
    }

    public void Note(string note)
    {
        _notes.Add(note);
        Console.Error.WriteLine($"  note: {note}");
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine("| # | scenario | metric | MitmCache | baseline | ratio | target | |");
        text.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var row in _rows)
        {
            var number = row.Scenario.Split(' ', 2)[0];
            var name = row.Scenario.Split(' ', 2) is [_, var rest] ? rest : row.Scenario;
            text.AppendLine($"| {number} | {name} | {row.Metric} | {row.MitmCache} | {row.Baseline} | {row.Ratio} | {row.Target} | {row.Verdict} |");
        }

        if (_notes.Count > 0)
        {
            text.AppendLine();
            foreach (var note in _notes)
            {
                text.AppendLine($"- {note}");
            }
        }

        return text.ToString();
    }

    public static string F(double value) => value.ToString(value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
}
