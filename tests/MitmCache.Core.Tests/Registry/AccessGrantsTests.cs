using System.Security.Cryptography;
using System.Text;
using MitmCache.Core.Tests.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public sealed class AccessGrantsTests : IDisposable
{
    private const string Registry = "registry.test";
    private const string AliceBasic = "Basic YWxpY2U6c2VjcmV0"; // alice:secret
    private const string BobBasic = "Basic Ym9iOnNlY3JldA==";

    private readonly string _dir = Directory.CreateTempSubdirectory("grants-").FullName;
    private readonly FakeTimeProvider _time = new();
    private readonly TestIndex _index;
    private readonly AccessTokens _tokens;
    private readonly AccessGrants _grants;

    public AccessGrantsTests()
    {
        _index = new TestIndex(Path.Combine(_dir, "index.db"));
        _tokens = new AccessTokens(_time);
        _grants = new AccessGrants(RandomNumberGenerator.GetBytes(32), _index.Grants, _index.Visibility, _tokens, _time, TimeSpan.FromDays(7));
    }

    public void Dispose()
    {
        _index.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void RecordSuccess_Basic_GrantedForThatRepositoryOnlyForTheWindow()
    {
        _grants.RecordSuccess(AliceBasic, Registry, "private/app");

        Assert.True(_grants.IsGranted(AliceBasic, Registry, "private/app"));
        Assert.False(_grants.IsGranted(AliceBasic, Registry, "team-b/tool"));
        Assert.False(_grants.IsGranted(AliceBasic, "other.test", "private/app"));
        Assert.False(_grants.IsGranted(BobBasic, Registry, "private/app"));
        _time.Advance(TimeSpan.FromDays(7) - TimeSpan.FromSeconds(1));
        Assert.True(_grants.IsGranted(AliceBasic, Registry, "private/app"));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(_grants.IsGranted(AliceBasic, Registry, "private/app"));
    }

    [Fact]
    public void RecordSuccess_Anonymous_GrantsNothing()
    {
        _grants.RecordSuccess(null, Registry, "public/base");
        _grants.RecordSuccess("", Registry, "public/base");

        Assert.False(_grants.IsGranted(null, Registry, "public/base"));
        Assert.False(_grants.IsGranted("", Registry, "public/base"));
    }

    [Fact]
    public void RecordSuccess_BearerJwt_ExpiresWithTheToken()
    {
        var token = Jwt(_time.GetUtcNow().AddMinutes(3));

        _grants.RecordSuccess($"Bearer {token}", Registry, "private/app");

        Assert.True(_grants.IsGranted($"Bearer {token}", Registry, "private/app"));
        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.False(_grants.IsGranted($"Bearer {token}", Registry, "private/app"));
    }

    [Fact]
    public void RecordSuccess_TokenIssuedForBasic_GrantsTheBasicCredentialForTheWindow()
    {
        var token = Jwt(_time.GetUtcNow().AddMinutes(5));
        _grants.RecordTokenOwner(token, AliceBasic, TimeSpan.FromMinutes(5));

        _grants.RecordSuccess($"Bearer {token}", Registry, "private/app");
        _time.Advance(TimeSpan.FromDays(3));

        Assert.True(_grants.IsGranted(AliceBasic, Registry, "private/app"));
        Assert.False(_grants.IsGranted($"Bearer {token}", Registry, "private/app"));
        Assert.False(_grants.IsGranted(BobBasic, Registry, "private/app"));
    }

    [Fact]
    public void RecordRefusal_TokenOfABasicCredential_DropsBothAtOnce()
    {
        var token = Jwt(_time.GetUtcNow().AddMinutes(5));
        _grants.RecordTokenOwner(token, AliceBasic, TimeSpan.FromMinutes(5));
        _grants.RecordSuccess($"Bearer {token}", Registry, "private/app");
        _grants.RecordSuccess(AliceBasic, Registry, "other/repo");

        _grants.RecordRefusal($"Bearer {token}", Registry, "private/app");

        Assert.False(_grants.IsGranted(AliceBasic, Registry, "private/app"));
        Assert.False(_grants.IsGranted($"Bearer {token}", Registry, "private/app"));
        Assert.True(_grants.IsGranted(AliceBasic, Registry, "other/repo"));
    }

    [Fact]
    public void RevokeAll_RepositoryOrRegistry_DropsEveryCredentialsGrants()
    {
        _grants.RecordSuccess(AliceBasic, Registry, "private/app");
        _grants.RecordSuccess(BobBasic, Registry, "private/app");
        _grants.RecordSuccess(BobBasic, Registry, "team-b/tool");
        _grants.RecordSuccess(BobBasic, "other.test", "team-b/tool");

        Assert.Equal(2, _grants.RevokeAll(Registry, "private/app"));
        Assert.False(_grants.IsGranted(AliceBasic, Registry, "private/app"));
        Assert.True(_grants.IsGranted(BobBasic, Registry, "team-b/tool"));

        Assert.Equal(1, _grants.RevokeAll(Registry, null));
        Assert.True(_grants.IsGranted(BobBasic, "other.test", "team-b/tool"));
    }

    [Fact]
    public void KeyOf_IsKeyedHmac_NeverTheCredentialAndDiffersPerInstall()
    {
        var other = new AccessGrants(RandomNumberGenerator.GetBytes(32), _index.Grants, _index.Visibility, _tokens, _time, TimeSpan.FromDays(7));

        var key = _grants.KeyOf(AliceBasic);

        Assert.Equal(64, key.Length);
        Assert.NotEqual(key, other.KeyOf(AliceBasic));
        Assert.NotEqual(key, _grants.KeyOf(BobBasic));
        Assert.DoesNotContain("YWxpY2U6c2VjcmV0", key, StringComparison.Ordinal);
        _grants.RecordSuccess(AliceBasic, Registry, "private/app");
        Assert.False(other.IsGranted(AliceBasic, Registry, "private/app"));
    }

    [Fact]
    public void Grants_PersistInTheIndexWithoutTheCredential()
    {
        _grants.RecordSuccess(AliceBasic, Registry, "private/app");
        _index.Dispose();

        var bytes = File.ReadAllBytes(Path.Combine(_dir, "index.db"));

        Assert.Equal(-1, bytes.AsSpan().IndexOf("YWxpY2U6c2VjcmV0"u8));
        Assert.Equal(-1, bytes.AsSpan().IndexOf("alice:secret"u8));
        using var reopened = new TestIndex(Path.Combine(_dir, "index.db"));
        Assert.NotNull(reopened.Grants.FindGrant(_grants.KeyOf(AliceBasic), Registry, "private/app"));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void LoadOrCreateKey_CreatesOwnerOnlyFileAndRefusesReadableOne()
    {
        var ca = Path.Combine(_dir, "ca");

        var key = AccessGrants.LoadOrCreateKey(ca);
        var path = new MitmCache.Configuration.CaFiles(ca).GrantsKey;

        Assert.Equal(32, key.Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(key, AccessGrants.LoadOrCreateKey(ca));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var error = Assert.ThrowsAny<Exception>(() => AccessGrants.LoadOrCreateKey(ca));
        Assert.Contains("chmod 600", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not-a-jwt")]
    [InlineData("a.b.c")]
    [InlineData("a.e30.c")]
    public void TokenExpiry_NotAJwtWithExp_Null(string token) => Assert.Null(AccessGrants.TokenExpiry(token));

    private static string Jwt(DateTimeOffset expires)
    {
        static string Part(string json) => Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{Part("{\"alg\":\"RS256\"}")}.{Part($"{{\"exp\":{expires.ToUnixTimeSeconds()}}}")}.sig";
    }

    [Fact]
    public void RecordSuccess_AnonymousClient_MakesTheRepositoryPublic_NoGrant()
    {
        _tokens.RememberAnonymous("anon-token", TimeSpan.FromMinutes(5));

        _grants.RecordSuccess(null, Registry, "library/open");
        _grants.RecordSuccess("Bearer anon-token", Registry, "library/also-open");

        Assert.True(_index.Visibility.IsPublic(Registry, "library/open"));
        Assert.True(_index.Visibility.IsPublic(Registry, "library/also-open"));
        Assert.False(_grants.IsGranted("Bearer anon-token", Registry, "library/also-open"));
    }

    [Fact]
    public void RecordRefusal_AnonymousToken_MakesAPublicRepositoryPrivate_NoCredentialProvesNothing()
    {
        _tokens.RememberAnonymous("anon-token", TimeSpan.FromMinutes(5));
        _index.Visibility.SetVisibility(Registry, "team/flip", isPublic: true, DateTime.UtcNow);

        _grants.RecordRefusal(null, Registry, "team/flip"); // the token dance's first 401
        Assert.True(_index.Visibility.IsPublic(Registry, "team/flip"));

        _grants.RecordRefusal("Bearer anon-token", Registry, "team/flip");
        Assert.False(_index.Visibility.IsPublic(Registry, "team/flip"));

        _grants.RecordSuccess("Bearer anon-token", Registry, "team/flip"); // public again upstream
        Assert.True(_index.Visibility.IsPublic(Registry, "team/flip"));
    }
}
