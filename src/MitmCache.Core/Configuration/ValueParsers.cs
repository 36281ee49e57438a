using System.Globalization;
using System.Net;

namespace MitmCache.Configuration;

/// <summary>Parsers for the human-friendly values used in options: sizes, durations, endpoints.</summary>
public static class ValueParsers
{
    private static readonly (string Suffix, long Factor)[] s_sizeUnits =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("KB", 1000L), ("MB", 1000L * 1000), ("GB", 1000L * 1000 * 1000), ("TB", 1000L * 1000 * 1000 * 1000),
        ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("T", 1L << 40), ("B", 1L),
    ];

    /// <summary>Parses <c>50GiB</c>, <c>500MB</c>, <c>1073741824</c>. Units are case-sensitive like in systemd.</summary>
    public static bool TryParseSize(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        var factor = 1L;
        foreach (var (suffix, unit) in s_sizeUnits)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal))
            {
                factor = unit;
                text = text[..^suffix.Length].TrimEnd();
                break;
            }
        }

        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number) || number < 0)
        {
            return false;
        }

        if (number > long.MaxValue / factor)
        {
            return false;
        }

        bytes = (long)(number * factor);
        return true;
    }

    /// <summary>Parses <c>30s</c>, <c>5m</c>, <c>2h</c>, <c>7d</c>, <c>250ms</c> or a TimeSpan literal.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        (string Suffix, double Seconds)[] units = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)];
        foreach (var (suffix, seconds) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(text[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
                && value >= 0)
            {
                var total = value * seconds;
                if (!double.IsFinite(total) || total > TimeSpan.MaxValue.TotalSeconds / 2)
                {
                    return false;
                }

                duration = TimeSpan.FromSeconds(total);
                return true;
            }
        }

        // A bare number is seconds (TimeSpan would read "10" as ten days).
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bare))
        {
            duration = TimeSpan.FromSeconds(Math.Min(bare, (long)(TimeSpan.MaxValue.TotalSeconds / 2)));
            return true;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration >= TimeSpan.Zero;
    }

    /// <summary>Parses <c>127.0.0.1:3128</c>, <c>[::1]:3128</c>, <c>0.0.0.0:3128</c> or <c>:3128</c> (all interfaces).</summary>
    public static bool TryParseEndpoint(string? text, out IPEndPoint endpoint)
    {
        endpoint = null!;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        if (text.StartsWith(':') && int.TryParse(text.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var anyPort) && anyPort <= 65535)
        {
            endpoint = new IPEndPoint(IPAddress.IPv6Any, anyPort);
            return true;
        }

        return IPEndPoint.TryParse(text, out endpoint!) && text.Contains(':', StringComparison.Ordinal)
            && (endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
                ? text.Contains('.', StringComparison.Ordinal)
                : text.StartsWith('[') && text.Contains("]:", StringComparison.Ordinal) && char.IsAsciiDigit(text[^1]));
    }

    /// <summary>Splits <c>host:port</c> or <c>[v6]:port</c>. The port must be 1-65535.</summary>
    public static bool TrySplitHostPort(string text, out string host, out int port)
    {
        host = "";
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || (text.Contains(':', StringComparison.Ordinal) && text[0] != '[' && text.IndexOf(':') != colon))
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']'))
            {
                return false;
            }

            host = host[1..^1];
        }

        return host.Length > 0
            && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port)
            && port is > 0 and <= 65535;
    }
}
