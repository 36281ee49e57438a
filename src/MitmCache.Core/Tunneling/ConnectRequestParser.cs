using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text;

namespace MitmCache.Tunneling;

/// <summary>
/// Parses a proxy <c>CONNECT</c> head (request line and headers, up to the blank line) from raw bytes.
/// Pure and allocation-light; the connection middleware feeds it what it has read so far.
/// </summary>
internal static class ConnectRequestParser
{
    public const int MaxHeadBytes = 8 * 1024;
    private const int MaxHostLength = 253;

    private static ReadOnlySpan<byte> ConnectPrefix => "CONNECT "u8;

    public static ConnectParseResult Parse(ReadOnlySequence<byte> buffer)
    {
        // Decide CONNECT vs. anything else from the first bytes, without waiting for a whole line.
        Span<byte> start = stackalloc byte[8];
        var available = (int)Math.Min(buffer.Length, start.Length);
        buffer.Slice(0, available).CopyTo(start);
        if (!ConnectPrefix[..available].SequenceEqual(start[..available]))
        {
            return new(ConnectParseStatus.NotConnect);
        }

        if (available < ConnectPrefix.Length)
        {
            return new(ConnectParseStatus.Incomplete);
        }

        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8, advancePastDelimiter: true)
            && !TryReadBareLf(ref reader, buffer, out head))
        {
            return buffer.Length > MaxHeadBytes ? new(ConnectParseStatus.TooLarge) : new(ConnectParseStatus.Incomplete);
        }

        if (head.Length > MaxHeadBytes)
        {
            return new(ConnectParseStatus.TooLarge);
        }

        var text = head.ToArray();
        foreach (var b in text)
        {
            if (b == 0 || b >= 0x80)
            {
                return Malformed("the request head contains NUL or non-ASCII bytes");
            }
        }

        var lines = Encoding.ASCII.GetString(text).Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[0] != "CONNECT" || !requestLine[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return Malformed("expected 'CONNECT host:port HTTP/1.1'");
        }

        if (!TryParseAuthority(requestLine[1], out var host, out var port, out var error))
        {
            return Malformed(error);
        }

        string? proxyAuthorization = null;
        string? via = null;
        foreach (var line in lines.AsSpan(1))
        {
            if (line.Length == 0)
            {
                continue;
            }

            var colon = line.IndexOf(':');
            if (colon <= 0 || line[..colon].Contains(' ', StringComparison.Ordinal))
            {
                return Malformed("malformed header line");
            }

            if (line.AsSpan(0, colon).Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                proxyAuthorization = line[(colon + 1)..].Trim();
            }
            else if (line.AsSpan(0, colon).Equals("Via", StringComparison.OrdinalIgnoreCase))
            {
                via = via is null ? line[(colon + 1)..].Trim() : via + ", " + line[(colon + 1)..].Trim();
            }
        }

        return new(ConnectParseStatus.Parsed, new ConnectRequest(host, port, proxyAuthorization, via), reader.Consumed);
    }

    /// <summary>
    /// How many CR and LF bytes the buffer starts with. RFC 9112 section 2.2 lets a server ignore empty
    /// lines before a request line; the caller consumes them itself, because Kestrel skips them while its
    /// keep-alive timer (130 s) runs instead of the request-header timeout, so a client dripping CRLFs
    /// would hold a connection far longer than <c>--header-timeout</c>.
    /// </summary>
    public static long CountLeadingLineBreaks(ReadOnlySequence<byte> buffer)
    {
        long count = 0;
        foreach (var segment in buffer)
        {
            var span = segment.Span;
            var other = span.IndexOfAnyExcept((byte)'\r', (byte)'\n');
            if (other >= 0)
            {
                return count + other;
            }

            count += span.Length;
        }

        return count;
    }

    /// <summary>Validates a CONNECT authority: <c>host:port</c>, <c>[v6]:port</c>; no userinfo, path or junk.</summary>
    public static bool TryParseAuthority(string authority, out string host, out int port, out string error)
    {
        host = "";
        port = 0;
        error = "";
        if (authority.Contains('@', StringComparison.Ordinal) || authority.Contains('/', StringComparison.Ordinal))
        {
            error = "the CONNECT target must be host:port, without userinfo or path";
            return false;
        }

        var colon = authority.LastIndexOf(':');
        if (colon < 0)
        {
            error = "the CONNECT target has no port";
            return false;
        }

        var hostPart = authority[..colon];
        var portPart = authority[(colon + 1)..];
        if (!int.TryParse(portPart, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535 || portPart.Length > 5)
        {
            error = $"invalid port '{portPart}'";
            return false;
        }

        if (hostPart.StartsWith('['))
        {
            if (!hostPart.EndsWith(']') || !IPAddress.TryParse(hostPart[1..^1], out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = "invalid IPv6 literal";
                return false;
            }

            host = v6.ToString();
            return true;
        }

        if (hostPart.Contains(':', StringComparison.Ordinal))
        {
            error = "IPv6 addresses must be in brackets";
            return false;
        }

        if (!HostPolicy.IsValidHostName(hostPart))
        {
            error = "invalid host name";
            return false;
        }

        host = hostPart.ToLowerInvariant();
        return true;
    }

    private static bool TryReadBareLf(ref SequenceReader<byte> reader, ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> head)
    {
        // Tolerate clients that end lines with a bare LF (RFC 9112 section 2.2 allows it).
        reader = new SequenceReader<byte>(buffer);
        return reader.TryReadTo(out head, "\n\n"u8, advancePastDelimiter: true);
    }

    private static ConnectParseResult Malformed(string error) => new(ConnectParseStatus.Malformed, Error: error);
}
