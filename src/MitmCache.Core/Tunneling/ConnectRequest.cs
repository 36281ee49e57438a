namespace MitmCache.Tunneling;

/// <summary>A parsed <c>CONNECT host:port</c> head. <see cref="Host"/> is lower-case, without IPv6 brackets.</summary>
/// <param name="Via">The hops it passed (a child of the cluster tier names itself): a loop if this proxy is among them.</param>
internal sealed record ConnectRequest(string Host, int Port, string? ProxyAuthorization, string? Via = null)
{
    /// <summary>The authority as written on the wire: <c>host:port</c> or <c>[v6]:port</c>.</summary>
    public string Authority => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

internal enum ConnectParseStatus
{
    /// <summary>The head is not complete yet; read more.</summary>
    Incomplete,
    /// <summary>Not a CONNECT request: hand the bytes to the HTTP server untouched.</summary>
    NotConnect,
    Parsed,
    /// <summary>A CONNECT head that is malformed; answer 400.</summary>
    Malformed,
    /// <summary>The head exceeds the size cap; answer 431.</summary>
    TooLarge,
}

internal readonly record struct ConnectParseResult(ConnectParseStatus Status, ConnectRequest? Request = null, long Consumed = 0, string? Error = null);
