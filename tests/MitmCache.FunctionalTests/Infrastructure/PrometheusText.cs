using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>One sample line: <c>name{label="value",...} 123</c>.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A strict parser of the Prometheus text exposition format 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/): every line is a HELP, a TYPE or a
/// sample; a family's HELP and TYPE come once, before its samples; label values are unescaped.
/// Anything else fails the parse, so a test that parses is a test of the format.
/// </summary>
public sealed partial class PrometheusText
{
    private PrometheusText(Dictionary<string, string> help, Dictionary<string, string> types, List<PrometheusSample> samples)
    {
        Help = help;
        Types = types;
        Samples = samples;
    }

    public IReadOnlyDictionary<string, string> Help { get; }

    public IReadOnlyDictionary<string, string> Types { get; }

    public IReadOnlyList<PrometheusSample> Samples { get; }

    /// <exception cref="FormatException">The text breaks the format; the message names the line.</exception>
    public static PrometheusText Parse(string text)
    {
        if (!text.EndsWith('\n'))
        {
            throw new FormatException("the exposition must end with a line feed");
        }

        var help = new Dictionary<string, string>(StringComparer.Ordinal);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var samples = new List<PrometheusSample>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lines = text[..^1].Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var where = $"line {i + 1} '{line}'";
            if (line.StartsWith("# HELP ", StringComparison.Ordinal) || line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line[7..].Split(' ', 2);
                var name = parts[0];
                if (!MetricName().IsMatch(name) || parts.Length < 2 || parts[1].Length == 0)
                {
                    throw new FormatException($"{where}: malformed comment");
                }

                var target = line[2] == 'H' ? help : types;
                if (!target.TryAdd(name, parts[1]))
                {
                    throw new FormatException($"{where}: second {line[2..6]} for {name}");
                }

                if (samples.Any(s => s.Name == name))
                {
                    throw new FormatException($"{where}: {line[2..6]} after samples of {name}");
                }

                if (line[2] == 'T' && parts[1] is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
                {
                    throw new FormatException($"{where}: unknown type");
                }

                continue;
            }

            if (line.Length == 0 || line.StartsWith('#'))
            {
                throw new FormatException($"{where}: blank lines and other comments are not expected from MitmCache");
            }

            var match = SampleLine().Match(line);
            if (!match.Success)
            {
                throw new FormatException($"{where}: not a sample line");
            }

            var labels = ParseLabels(match.Groups["labels"].Value, where);
            var sampleName = match.Groups["name"].Value;
            if (!double.TryParse(match.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                throw new FormatException($"{where}: value is not a number");
            }

            var key = sampleName + "{" + string.Join(',', labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}")) + "}";
            if (!seen.Add(key))
            {
                throw new FormatException($"{where}: duplicate series {key}");
            }

            samples.Add(new PrometheusSample(sampleName, labels, value));
        }

        return new PrometheusText(help, types, samples);
    }

    /// <summary>The value of the one sample with this name whose labels include <paramref name="labels"/>.</summary>
    public double Value(string name, params (string Name, string Value)[] labels)
    {
        var matches = Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).ToList();
        return matches.Count == 1
            ? matches[0].Value
            : throw new InvalidOperationException($"{matches.Count} samples of {name} match {string.Join(',', labels.Select(l => $"{l.Name}={l.Value}"))}");
    }

    /// <summary>The sum over every sample with this name whose labels include <paramref name="labels"/> (0 when none).</summary>
    public double Sum(string name, params (string Name, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).Sum(s => s.Value);

    private static Dictionary<string, string> ParseLabels(string text, string where)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var position = 0;
        while (position < text.Length)
        {
            var match = LabelPair().Match(text, position);
            if (!match.Success || match.Index != position)
            {
                throw new FormatException($"{where}: malformed labels at '{text[position..]}'");
            }

            if (!labels.TryAdd(match.Groups["name"].Value, Unescape(match.Groups["value"].Value)))
            {
                throw new FormatException($"{where}: label {match.Groups["name"].Value} repeated");
            }

            position += match.Length;
            if (position < text.Length)
            {
                if (text[position] != ',')
                {
                    throw new FormatException($"{where}: expected ',' between labels");
                }

                position++;
            }
        }

        return labels;
    }

    private static string Unescape(string value)
    {
        var text = new StringBuilder();
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '\\' && i + 1 < value.Length)
            {
                i++;
                text.Append(value[i] == 'n' ? '\n' : value[i]);
            }
            else
            {
                text.Append(value[i]);
            }
        }

        return text.ToString();
    }

    [GeneratedRegex(@"^[a-zA-Z_:][a-zA-Z0-9_:]*\z")]
    public static partial Regex MetricName();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^{}]*)\})? (?<value>[^ ]+)( [0-9]+)?\z")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<name>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
