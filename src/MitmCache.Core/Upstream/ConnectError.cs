namespace MitmCache.Upstream;

/// <summary>Why an upstream connection could not be made. Each maps to a distinct client answer.</summary>
internal enum ConnectError
{
    None,
    /// <summary>The name resolved only to refused addresses (link-local, metadata, the proxy itself): 403.</summary>
    Denied,
    /// <summary>The name did not resolve: 502.</summary>
    NameNotResolved,
    /// <summary>TCP refused, reset or unreachable: 502.</summary>
    Unreachable,
    /// <summary>No answer within the connect timeout: 504.</summary>
    Timeout,
    /// <summary>The parent proxy refused the CONNECT: 502.</summary>
    ParentProxyRefused,
    /// <summary>Known down (<see cref="UpstreamHealth"/>): not dialled at all until a probe gets an answer: 503.</summary>
    Down,
}

internal sealed class UpstreamConnectException(ConnectError error, string message, Exception? inner = null)
    : IOException(message, inner)
{
    public ConnectError Error { get; } = error;
}
