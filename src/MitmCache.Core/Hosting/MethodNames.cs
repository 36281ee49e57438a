namespace MitmCache.Hosting;

/// <summary>
/// Method names are case-sensitive (RFC 9110 section 9.1): <c>Head</c> is not <c>HEAD</c>. Kestrel
/// knows that and sends a body for <c>Head</c>; ASP.NET's <c>HttpMethods.IsHead</c> does not, so an
/// endpoint that answers "HEAD" with a Content-Length and no body had Kestrel replace its answer with
/// a 500 for the length mismatch. Such near-misses are refused before anything handles them.
/// </summary>
internal static class MethodNames
{
    private static readonly HashSet<string> s_standard = new(StringComparer.OrdinalIgnoreCase)
    {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    };

    /// <summary>True when <paramref name="method"/> is a standard method in the wrong case (<c>get</c>, <c>Head</c>).</summary>
    public static bool IsMiscased(string method, out string standard)
    {
        if (s_standard.TryGetValue(method, out var known) && !string.Equals(known, method, StringComparison.Ordinal))
        {
            standard = known;
            return true;
        }

        standard = "";
        return false;
    }
}
