using System.Globalization;
using System.Text;

namespace MitmCache.Cli;

/// <summary>How the CLI writes sizes, digests, ages and tables for people.</summary>
internal static class TextFormat
{
    private static readonly string[] s_units = ["B", "KiB", "MiB", "GiB", "TiB"];

    /// <summary><c>1536</c> → <c>1.5 KiB</c>.</summary>
    public static string Size(long bytes)
    {
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < s_units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {s_units[unit]}");
    }

    /// <summary>The first 12 hex digits, as <c>docker images</c> shows IDs.</summary>
    public static string ShortDigest(string digest)
    {
        var colon = digest.IndexOf(':', StringComparison.Ordinal);
        var hex = colon < 0 ? digest : digest[(colon + 1)..];
        return hex.Length > 12 ? hex[..12] : hex;
    }

    /// <summary><c>just now</c>, <c>5m ago</c>, <c>3h ago</c>, <c>12d ago</c>.</summary>
    public static string Ago(DateTime utc, DateTime now)
    {
        if (utc == DateTime.MinValue)
        {
            return "-";
        }

        var age = now - (utc.Kind == DateTimeKind.Local ? utc.ToUniversalTime() : utc);
        return age.TotalMinutes < 1 ? "just now"
            : age.TotalHours < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalMinutes}m ago")
            : age.TotalDays < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalHours}h ago")
            : string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalDays}d ago");
    }

    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Percent(double ratio) => ratio.ToString("0.0%", CultureInfo.InvariantCulture);

    /// <summary>Left-aligned columns separated by two spaces, headers first.</summary>
    public static string Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows, string indent = "")
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        var text = new StringBuilder();
        foreach (var row in all)
        {
            text.Append(indent);
            for (var i = 0; i < row.Count; i++)
            {
                text.Append(i == row.Count - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            }

            text.Append('\n');
        }

        return text.ToString();
    }
}
