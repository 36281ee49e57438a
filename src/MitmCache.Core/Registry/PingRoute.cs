namespace MitmCache.Registry;

/// <summary><c>GET /v2/</c>: the API version check (and the usual first 401 with the auth challenge).</summary>
internal sealed record PingRoute : RegistryRoute
{
    public static PingRoute Instance { get; } = new();

    private PingRoute()
    {
    }
}
