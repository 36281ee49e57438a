using System.Net;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Hosting;

/// <summary>
/// <c>/admin/*</c> on the proxy port: the cache operations of <see cref="CacheAdmin"/> as JSON, for
/// <c>mitmcache cache ...</c> while the proxy runs (the index can only be open in one process), and the
/// revocation of grants for <c>mitmcache auth revoke</c>.
/// <code>
///   GET  /admin/cache/info                       the data directory this proxy serves
///   GET  /admin/cache/stats?top=10
///   GET  /admin/cache/entries?registry=R&amp;repository=N
///   POST /admin/cache/prune?olderThan=30d&amp;maxSize=20GiB&amp;dryRun=true
///   POST /admin/cache/verify?delete=true
///   POST /admin/auth/revoke?registry=R&amp;repository=N
/// </code>
/// One guard for all of them, since a web page open on the node can reach loopback: only loopback clients
/// that name the proxy by a loopback address or <c>localhost</c> are answered (a page that rebinds its DNS
/// name to 127.0.0.1 sends its own name as Host); requests from browsers (with an <c>Origin</c>) are
/// refused; and a POST needs <see cref="RequiredHeader"/>, which a cross-site form cannot send.
/// </summary>
internal sealed class AdminEndpoints(CacheAdmin admin, AccessGrants grants, ILogger<AdminEndpoints> logger)
{
    public const string PathPrefix = "/admin/";
    public const string RequiredHeader = "X-MitmCache-Admin";

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "";
        if (!IsLocal(context))
        {
            logger.AdminRefused(path, context.Connection.RemoteIpAddress?.ToString() ?? "?", request.Headers.Host.ToString());
            await WriteErrorAsync(context, StatusCodes.Status403Forbidden, "admin endpoints answer loopback clients only (connect to 127.0.0.1, ::1 or localhost)");
            return;
        }

        var get = HttpMethods.IsGet(request.Method);
        var post = HttpMethods.IsPost(request.Method);
        if (post && request.Headers[RequiredHeader].ToString() != "1")
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, $"POST needs the header {RequiredHeader}: 1");
            return;
        }

        switch (path)
        {
            case "/admin/cache/info" when get:
                await WriteAsync(context, new AdminInfo(admin.DataDirectory), AdminJson.Default.AdminInfo);
                return;
            case "/admin/cache/stats" when get:
                var top = int.TryParse(request.Query["top"], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? Math.Clamp(n, 0, 1000) : 10;
                await WriteAsync(context, admin.Stats(top), AdminJson.Default.CacheStats);
                return;
            case "/admin/cache/entries" when get:
                await WriteAsync(context, admin.List(request.Query["registry"], request.Query["repository"]), AdminJson.Default.IReadOnlyListCacheEntry);
                return;
            case "/admin/cache/prune" when post:
                await PruneAsync(context);
                return;
            case "/admin/cache/verify" when post:
                await VerifyAsync(context);
                return;
            case "/admin/auth/revoke" when post:
                await RevokeAsync(context);
                return;
            case "/admin/cache/info" or "/admin/cache/stats" or "/admin/cache/entries":
                await NotAllowedAsync(context, "GET");
                return;
            case "/admin/cache/prune" or "/admin/cache/verify" or "/admin/auth/revoke":
                await NotAllowedAsync(context, "POST");
                return;
            default:
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, $"no admin endpoint {path}");
                return;
        }
    }

    private static Task NotAllowedAsync(HttpContext context, string allow)
    {
        context.Response.Headers.Allow = allow;
        return WriteErrorAsync(context, StatusCodes.Status405MethodNotAllowed, $"{context.Request.Method} is not allowed on {context.Request.Path}");
    }

    private async Task RevokeAsync(HttpContext context)
    {
        var registry = context.Request.Query["registry"].ToString();
        if (registry.Length == 0)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "registry is required");
            return;
        }

        var repository = context.Request.Query["repository"].ToString();
        logger.AdminOperation(repository.Length == 0 ? $"revoke grants for {registry}" : $"revoke grants for {registry}/{repository}",
            context.Connection.RemoteIpAddress?.ToString() ?? "?");
        var revoked = grants.RevokeAll(registry, repository.Length == 0 ? null : repository);
        await WriteAsync(context, new RevokeReport(revoked), AdminJson.Default.RevokeReport);
    }

    private async Task PruneAsync(HttpContext context)
    {
        var query = context.Request.Query;
        var errors = new List<string>();
        TimeSpan? olderThan = null;
        long? maxSize = null;
        if (query["olderThan"].ToString() is { Length: > 0 } age)
        {
            if (ValueParsers.TryParseDuration(age, out var parsed))
            {
                olderThan = parsed;
            }
            else
            {
                errors.Add($"olderThan: '{age}' is not a duration (30d, 12h, 90m)");
            }
        }

        if (query["maxSize"].ToString() is { Length: > 0 } size)
        {
            if (ValueParsers.TryParseSize(size, out var parsed))
            {
                maxSize = parsed;
            }
            else
            {
                errors.Add($"maxSize: '{size}' is not a size (20GiB, 500MB)");
            }
        }

        if (olderThan is null && maxSize is null)
        {
            errors.Add("give olderThan, maxSize or both");
        }

        if (!TryFlag(query["dryRun"], out var dryRun))
        {
            errors.Add("dryRun: expected true or false");
        }

        if (errors.Count > 0)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, string.Join("; ", errors));
            return;
        }

        logger.AdminOperation(dryRun ? "prune (dry run)" : "prune", context.Connection.RemoteIpAddress?.ToString() ?? "?");
        await WriteAsync(context, admin.Prune(olderThan, maxSize, dryRun), AdminJson.Default.PruneReport);
    }

    private async Task VerifyAsync(HttpContext context)
    {
        var errors = new List<string>();
        if (!TryFlag(context.Request.Query["delete"], out var delete))
        {
            errors.Add("delete: expected true or false");
        }

        if (errors.Count > 0)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, string.Join("; ", errors));
            return;
        }

        logger.AdminOperation(delete ? "verify --delete" : "verify", context.Connection.RemoteIpAddress?.ToString() ?? "?");
        var token = context.RequestAborted;
        VerifyReport report;
        try
        {
            // Re-hashing the whole store takes a while: keep it off the request thread, stop if the CLI goes away.
            report = await Task.Run(() => admin.Verify(delete, token), token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await WriteAsync(context, report, AdminJson.Default.VerifyReport);
    }

    /// <summary>Absent means false; present without a value (<c>?dryRun</c>) means true.</summary>
    private static bool TryFlag(Microsoft.Extensions.Primitives.StringValues values, out bool flag)
    {
        flag = false;
        if (values.Count == 0)
        {
            return true;
        }

        var text = values.ToString();
        if (text.Length == 0 || text is "1" || text.Equals("true", StringComparison.OrdinalIgnoreCase))
        {
            flag = true;
            return true;
        }

        return text is "0" || text.Equals("false", StringComparison.OrdinalIgnoreCase);
    }

    private static bool IsLocal(HttpContext context)
    {
        var remote = context.Connection.RemoteIpAddress;
        if (remote is null || !IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote))
        {
            return false;
        }

        if (context.Request.Headers.Origin.Count > 0)
        {
            return false;
        }

        // The raw header: Request.Host decodes IDN labels and throws on bad punycode (Host: xn--), a 500.
        var host = new HostString(context.Request.Headers.Host.ToString()).Host;
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host.Trim('[', ']'), out var literal) && IPAddress.IsLoopback(literal));
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return WriteAsync(context, new AdminError(message), AdminJson.Default.AdminError);
    }

    private static async Task WriteAsync<T>(HttpContext context, T value, JsonTypeInfo<T> type)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        await System.Text.Json.JsonSerializer.SerializeAsync(context.Response.Body, value, type, context.RequestAborted);
    }
}
