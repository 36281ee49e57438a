namespace MitmCache.Registry;

/// <summary>
/// A syntactically safe <c>/v2/</c> path that is not cached (tags/list, _catalog, uploads, referrers, ...).
/// Forward it untouched.
/// </summary>
internal sealed record OtherRoute : RegistryRoute
{
    public static OtherRoute Instance { get; } = new();

    private OtherRoute()
    {
    }
}
