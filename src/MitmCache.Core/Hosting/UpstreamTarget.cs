namespace MitmCache.Hosting;

/// <summary>
/// Turns a client's request target into the URI the upstream is asked for, byte for byte.
/// <see cref="Uri"/>'s default canonicalization would rewrite it: dot segments removed (<c>/x/../v2/</c>
/// becomes <c>/v2/</c>, so what is forwarded differs from what was routed), <c>\</c> turned into
/// <c>/</c>, and a stray <c>%</c> escaped as <c>%25</c>, which triples a target's length until the
/// upstream resets the stream and the client sees a 502 for its own malformed request.
/// Because nothing is escaped any more, a target is only forwarded when every character is visible
/// ASCII: Kestrel lets a bare CR through in the request target, and sent on verbatim it would split
/// the upstream request line (HTTP/1.1) or make the upstream drop the whole connection (HTTP/2).
/// </summary>
internal static class UpstreamTarget
{
    private static readonly UriCreationOptions s_verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    /// <summary>Only visible ASCII (RFC 5234 VCHAR), and no '#': a fragment is never part of a request target.</summary>
    public static bool IsForwardable(ReadOnlySpan<char> rawTarget)
    {
        foreach (var c in rawTarget)
        {
            if (c is <= ' ' or >= '\x7f' or '#')
            {
                return false;
            }
        }

        return rawTarget.Length > 0;
    }

    /// <summary><c>https://authority</c> followed by the origin-form <paramref name="rawTarget"/> unchanged; false when it is not forwardable.</summary>
    public static bool TryForIntercepted(string authority, string rawTarget, out Uri uri)
    {
        if (rawTarget.StartsWith('/') && IsForwardable(rawTarget) && Uri.TryCreate($"https://{authority}{rawTarget}", in s_verbatim, out var created))
        {
            uri = created;
            return true;
        }

        uri = null!;
        return false;
    }

    /// <summary>Parses an absolute-form <c>http://host/path</c> target keeping its path and query unchanged.</summary>
    public static bool TryParseAbsolute(string rawTarget, out Uri uri)
    {
        // Scheme checked: on Unix "/x" alone parses as an absolute file:// URI.
        if (IsForwardable(rawTarget) && Uri.TryCreate(rawTarget, in s_verbatim, out var parsed) && parsed.Scheme == Uri.UriSchemeHttp)
        {
            uri = parsed;
            return true;
        }

        uri = null!;
        return false;
    }
}
