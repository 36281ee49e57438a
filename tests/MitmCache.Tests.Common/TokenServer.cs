using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace MitmCache.Tests.Common;

/// <summary>
/// The Docker token flow (https://distribution.github.io/distribution/spec/auth/token/) on
/// https://auth.test:PORT/token. GET takes Basic auth or none; POST takes the OAuth2 form
/// (grant_type=password or refresh_token) that containerd tries first when it has credentials.
/// A password grant (and a GET with <c>offline_token=true</c>) also returns a <c>refresh_token</c>,
/// which a later <c>grant_type=refresh_token</c> POST (<c>ctr --refresh</c>) exchanges for a token.
/// </summary>
public sealed class TokenServer : IAsyncDisposable
{
    public const string AdminUser = "admin";
    public const string DefaultAdminPassword = "admin-password";

    private static readonly string[] AllActions = ["pull", "push", "delete", "*"];
    private static readonly string[] PullOnly = ["pull"];

    private readonly X509Certificate2 _tlsCertificate;
    private readonly RSA _signingKey;
    private readonly string _keyId;
    private readonly IReadOnlyDictionary<string, string> _users;
    private readonly Func<string?, string, string[], string[]> _acl;
    private readonly ConcurrentDictionary<string, string> _refreshTokens = new();
    private readonly string _path;
    private WebApplication? _app;
    private int _requestCount;

    private TokenServer(X509Certificate2 tlsCertificate, RSA signingKey, string signingCertPath,
        IReadOnlyDictionary<string, string> users, Func<string?, string, string[], string[]> acl, string path)
    {
        _tlsCertificate = tlsCertificate;
        _path = path;
        _signingKey = signingKey;
        _keyId = LibtrustKeyId.FromSubjectPublicKeyInfo(signingKey.ExportSubjectPublicKeyInfo());
        _users = users;
        _acl = acl;
        SigningCertPath = signingCertPath;
    }

    public int Port { get; private set; }

    public string Realm => $"https://{Hosts.Auth}:{Port}{_path}";

    public string Service => Hosts.Registry;

    public string Issuer => Hosts.Auth;

    /// <summary>PEM certificate of the JWT signing key, for the registry's <c>rootcertbundle</c>.</summary>
    public string SigningCertPath { get; }

    /// <summary>Every request to this server, answered or refused.</summary>
    public int RequestCount => Volatile.Read(ref _requestCount);

    /// <summary>One line per token issued: "USER SCOPE SCOPE..." with "-" for anonymous or no scope.</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>Default ACL: anyone may pull anything; <see cref="AdminUser"/> gets every action asked for.</summary>
    public static string[] DefaultAcl(string? user, string repository, string[] requested) =>
        requested.Intersect(user == AdminUser ? AllActions : PullOnly).ToArray();

    public static async Task<TokenServer> StartAsync(TestPki pki, string dir,
        IReadOnlyDictionary<string, string>? users = null,
        Func<string?, string, string[], string[]>? acl = null, string path = "/token", CancellationToken ct = default)
    {
        Directory.CreateDirectory(dir);
        var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=MitmCache Test Token Signer", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var signingCert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        var signingCertPath = Path.Combine(dir, "token-signing.crt");
        await File.WriteAllTextAsync(signingCertPath, signingCert.ExportCertificatePem() + "\n", ct);

        var server = new TokenServer(pki.IssueServerCertificate(Hosts.Auth), key, signingCertPath,
            users ?? new Dictionary<string, string> { [AdminUser] = DefaultAdminPassword }, acl ?? DefaultAcl, path);
        await server.StartOnAsync(0, ct);
        return server;
    }

    /// <summary>Stops listening: new connections are refused until <see cref="StartAgainAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>Listens again on the same port (which someone else may have taken meanwhile).</summary>
    public Task StartAgainAsync(CancellationToken ct = default) =>
        _app is null ? StartOnAsync(Port, ct) : Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _signingKey.Dispose();
        _tlsCertificate.Dispose();
    }

    private async Task StartOnAsync(int port, CancellationToken ct) =>
        (_app, Port) = await LoopbackKestrel.StartAsync(_tlsCertificate, port, HandleAsync, ct);

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requestCount);
        var request = context.Request;
        if (request.Path != _path)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        string? user;
        StringValues service;
        IEnumerable<string> scopes;
        var offline = false;
        if (HttpMethods.IsGet(request.Method))
        {
            if (!TryBasicAuth(request.Headers.Authorization, out user))
            {
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"auth.test\"";
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                return;
            }

            service = request.Query["service"];
            scopes = request.Query["scope"].SelectMany(SplitScopes);
            offline = request.Query["offline_token"] == "true";
        }
        else if (HttpMethods.IsPost(request.Method) && request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(context.RequestAborted);
            if (!TryOAuthGrant(form, out user))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                return;
            }

            service = form["service"];
            scopes = form["scope"].SelectMany(SplitScopes);

            // As OAuth servers do: a password grant also yields a refresh token, which containerd then
            // uses (POST grant_type=refresh_token) as an identity token.
            offline = form["access_type"] == "offline" || form["grant_type"] == "password";
        }
        else
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }

        var scopeList = scopes.ToArray();
        Log.Enqueue($"{user ?? "-"} {(scopeList.Length == 0 ? "-" : string.Join(' ', scopeList))}");

        var now = DateTimeOffset.UtcNow;
        var token = CreateJwt(user, service.Count > 0 ? service[0]! : Service, scopeList, now);
        var body = new JsonObject
        {
            ["token"] = token,
            ["access_token"] = token,
            ["expires_in"] = 300,
            ["issued_at"] = now.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        };
        if (offline && user is not null)
        {
            var refresh = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            _refreshTokens[refresh] = user;
            body["refresh_token"] = refresh;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }

    private static IEnumerable<string> SplitScopes(string? value) =>
        (value ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>True for no credentials (anonymous, user null) or correct ones.</summary>
    private bool TryBasicAuth(StringValues header, out string? user)
    {
        user = null;
        if (StringValues.IsNullOrEmpty(header))
        {
            return true;
        }

        var value = header.ToString();
        if (!value.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(value["Basic ".Length..].Trim()));
        }
        catch (FormatException)
        {
            return false;
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0 || !IsValidUser(decoded[..colon], decoded[(colon + 1)..]))
        {
            return false;
        }

        user = decoded[..colon];
        return true;
    }

    private bool TryOAuthGrant(IFormCollection form, out string? user)
    {
        user = null;
        switch (form["grant_type"].ToString())
        {
            case "password":
                user = form["username"];
                return user is not null && IsValidUser(user, form["password"].ToString());
            case "refresh_token":
                return _refreshTokens.TryGetValue(form["refresh_token"].ToString(), out user);
            default:
                return false;
        }
    }

    private bool IsValidUser(string user, string password) =>
        _users.TryGetValue(user, out var expected) && expected == password;

    private string CreateJwt(string? user, string audience, string[] scopes, DateTimeOffset now)
    {
        // Merge "repository:NAME:ACTIONS" scopes per repository; other resource types get nothing.
        var requested = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var scope in scopes)
        {
            var first = scope.IndexOf(':', StringComparison.Ordinal);
            var last = scope.LastIndexOf(':');
            if (first <= 0 || last <= first || scope[..first] != "repository")
            {
                continue;
            }

            var name = scope[(first + 1)..last];
            if (!requested.TryGetValue(name, out var set))
            {
                requested[name] = set = new HashSet<string>(StringComparer.Ordinal);
            }

            set.UnionWith(scope[(last + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries));
        }

        var access = new JsonArray();
        foreach (var (name, actions) in requested)
        {
            var asked = actions.ToArray();
            var granted = _acl(user, name, asked).Intersect(asked).ToArray();
            access.Add(new JsonObject
            {
                ["type"] = "repository",
                ["name"] = name,
                ["actions"] = new JsonArray(granted.Select(a => (JsonNode)a).ToArray()),
            });
        }

        var header = new JsonObject { ["typ"] = "JWT", ["alg"] = "RS256", ["kid"] = _keyId };
        var claims = new JsonObject
        {
            ["iss"] = Issuer,
            ["sub"] = user ?? "",
            ["aud"] = audience,
            ["exp"] = now.AddMinutes(5).ToUnixTimeSeconds(),
            ["nbf"] = now.AddSeconds(-30).ToUnixTimeSeconds(),
            ["iat"] = now.ToUnixTimeSeconds(),
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["access"] = access,
        };

        var signingInput = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." +
            Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var signature = _signingKey.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }
}
