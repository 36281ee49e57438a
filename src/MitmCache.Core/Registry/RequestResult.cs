namespace MitmCache.Registry;

/// <summary>
/// What a registry request came to. One value names it in the <c>X-MitmCache</c> response header, the
/// <c>result</c> label of <c>mitmcache_requests_total</c> and the request log, always as its <see cref="RequestResults.Label"/>.
/// </summary>
internal enum RequestResult
{
    /// <summary>Served from the cache, upstream confirming or not needed.</summary>
    Hit,

    /// <summary>Fetched from upstream (and cached) for this request.</summary>
    Miss,

    /// <summary>Served from the cache because upstream could not be asked.</summary>
    Stale,

    /// <summary>Joined a fetch another request started.</summary>
    Coalesced,

    /// <summary>Upstream's answer relayed as it was (refusals, pings, HEADs, other registry paths).</summary>
    Forwarded,

    /// <summary>Relayed from upstream without caching (the disk cannot take it now, or the client may not share a fill).</summary>
    Bypass,

    /// <summary>A cached answer this client may not have; answered as an uncached one.</summary>
    Refused,

    /// <summary>A request the proxy would not forward (bad path or target).</summary>
    Rejected,

    /// <summary>Failed: upstream unreachable with nothing cached, or a broken transfer.</summary>
    Error,

    /// <summary>The client went away before an answer.</summary>
    Aborted,
}

internal static class RequestResults
{
    private static readonly string[] s_labels = [.. Enum.GetNames<RequestResult>().Select(n => n.ToLowerInvariant())];

    /// <summary>The lower-case name used in the header, the metric label and the log (<c>hit</c>, <c>miss</c>, ...).</summary>
    public static string Label(this RequestResult result) => s_labels[(int)result];

    /// <summary>Where the body of a request with this result came from: <c>cache</c>, <c>upstream</c>, or null for errors and refusals.</summary>
    public static string? Source(this RequestResult result) => result switch
    {
        RequestResult.Hit or RequestResult.Stale => "cache",
        RequestResult.Miss or RequestResult.Coalesced or RequestResult.Forwarded or RequestResult.Bypass => "upstream",
        _ => null,
    };
}
