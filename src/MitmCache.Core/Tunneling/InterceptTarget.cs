namespace MitmCache.Tunneling;

/// <summary>
/// The CONNECT target of an intercepted connection, stored in the connection's Items so that the TLS
/// callback and every request on that connection know where upstream is. Requests always go to this
/// authority, whatever Host header the client sends inside the tunnel.
/// </summary>
internal sealed record InterceptTarget(string Host, int Port)
{
    public static readonly object ItemKey = new();

    /// <summary><c>host</c> for 443, else <c>host:port</c>; IPv6 in brackets. This is how registries are keyed.</summary>
    public string Authority
    {
        get
        {
            var host = Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host;
            return Port == 443 ? host : $"{host}:{Port}";
        }
    }

    public static InterceptTarget? From(IDictionary<object, object?>? items) =>
        items is not null && items.TryGetValue(ItemKey, out var value) ? value as InterceptTarget : null;
}
