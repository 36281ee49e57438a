using Amazon.Runtime;
using MitmCache.ObjectStore;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class S3CredentialsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("s3-credentials-").FullName;

    [Fact]
    public void Resolve_EnvironmentKeys_AreUsed()
    {
        var credentials = Resolve(new() { ["AWS_ACCESS_KEY_ID"] = "AKID", ["AWS_SECRET_ACCESS_KEY"] = "secret" }, out var errors);

        Assert.Empty(errors);
        var immutable = credentials!.GetCredentials();
        Assert.Equal(("AKID", "secret", false), (immutable.AccessKey, immutable.SecretKey, immutable.UseToken));
    }

    [Fact]
    public void Resolve_SessionToken_IsKept()
    {
        var credentials = Resolve(new() { ["AWS_ACCESS_KEY_ID"] = "AKID", ["AWS_SECRET_ACCESS_KEY"] = "secret", ["AWS_SESSION_TOKEN"] = "token" }, out _);

        Assert.Equal("token", credentials!.GetCredentials().Token);
    }

    [Fact]
    public void Resolve_OnlyOneKeyInTheEnvironment_IsAnErrorThatNamesTheMissingVariableOnly()
    {
        Assert.Null(Resolve(new() { ["AWS_SECRET_ACCESS_KEY"] = "s3cr3tValue" }, out var errors));

        var error = Assert.Single(errors);
        Assert.StartsWith("AWS_ACCESS_KEY_ID is not set", error, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3tValue", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_CredentialsFile_ReadsTheNamedProfile()
    {
        var file = Path.Combine(_dir, "credentials");
        File.WriteAllText(file, "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n\n[cache]\naws_access_key_id = CACHEKEY\naws_secret_access_key = cachesecret\n");

        var credentials = Resolve(new() { ["AWS_SHARED_CREDENTIALS_FILE"] = file, ["AWS_PROFILE"] = "cache" }, out var errors);

        Assert.Empty(errors);
        Assert.Equal(("CACHEKEY", "cachesecret"), (credentials!.GetCredentials().AccessKey, credentials.GetCredentials().SecretKey));
        Assert.Equal("DEFAULTKEY", Resolve(new() { ["AWS_SHARED_CREDENTIALS_FILE"] = file }, out _)!.GetCredentials().AccessKey);
    }

    [Fact]
    public void Resolve_ProfileWithoutStaticKeys_IsRefused()
    {
        var file = Path.Combine(_dir, "credentials");
        File.WriteAllText(file, "[default]\ncredential_process = /bin/echo nope\n");

        Assert.Null(Resolve(new() { ["AWS_SHARED_CREDENTIALS_FILE"] = file }, out var errors));

        Assert.Contains("needs aws_access_key_id and aws_secret_access_key", Assert.Single(errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_NothingAnywhere_SaysWhereToPutKeys()
    {
        Assert.Null(Resolve(new() { ["HOME"] = _dir }, out var errors));

        Assert.Contains("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", Assert.Single(errors), StringComparison.Ordinal);
    }

    private static AWSCredentials? Resolve(Dictionary<string, string> environment, out List<string> errors)
    {
        errors = [];
        return S3Credentials.Resolve(name => environment.GetValueOrDefault(name), errors);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
