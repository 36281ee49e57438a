using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;

namespace MitmCache.ObjectStore;

/// <summary>
/// The bucket's keys, from the standard places only: <c>AWS_ACCESS_KEY_ID</c> + <c>AWS_SECRET_ACCESS_KEY</c>
/// (+ <c>AWS_SESSION_TOKEN</c>), else the static keys of profile <c>AWS_PROFILE</c> (default
/// <c>default</c>) in <c>AWS_SHARED_CREDENTIALS_FILE</c> (default <c>~/.aws/credentials</c>). Never from
/// flags. The SDK's own chain is not used: it would also try instance metadata (169.254.169.254),
/// container endpoints, SSO and <c>credential_process</c>, none of which a cache node should reach.
/// Error messages name variables and files, never a value.
/// </summary>
internal static class S3Credentials
{
    public const string AccessKeyVariable = "AWS_ACCESS_KEY_ID";
    public const string SecretKeyVariable = "AWS_SECRET_ACCESS_KEY";
    public const string SessionTokenVariable = "AWS_SESSION_TOKEN";
    public const string FileVariable = "AWS_SHARED_CREDENTIALS_FILE";
    public const string ProfileVariable = "AWS_PROFILE";

    /// <summary>The process environment.</summary>
    public static AWSCredentials? Resolve(ICollection<string> errors) => Resolve(Environment.GetEnvironmentVariable, errors);

    /// <summary>Null (with a reason in <paramref name="errors"/>) when no usable keys were found.</summary>
    public static AWSCredentials? Resolve(Func<string, string?> environment, ICollection<string> errors)
    {
        var accessKey = NonEmpty(environment(AccessKeyVariable));
        var secretKey = NonEmpty(environment(SecretKeyVariable));
        var token = NonEmpty(environment(SessionTokenVariable));
        if (accessKey is not null && secretKey is not null)
        {
            return token is null ? new BasicAWSCredentials(accessKey, secretKey) : new SessionAWSCredentials(accessKey, secretKey, token);
        }

        if (accessKey is not null || secretKey is not null)
        {
            errors.Add($"{(accessKey is null ? AccessKeyVariable : SecretKeyVariable)} is not set but {(accessKey is null ? SecretKeyVariable : AccessKeyVariable)} is: set both");
            return null;
        }

        var path = NonEmpty(environment(FileVariable));
        if (path is null && NonEmpty(environment("HOME")) is { } home)
        {
            path = Path.Combine(home, ".aws", "credentials");
        }

        if (path is null || !File.Exists(path))
        {
            errors.Add($"no S3 credentials: set {AccessKeyVariable} and {SecretKeyVariable}, or {FileVariable} to a credentials file{(path is null ? "" : $" ({path} does not exist)")}");
            return null;
        }

        var profileName = NonEmpty(environment(ProfileVariable)) ?? "default";
        try
        {
            var file = new SharedCredentialsFile(path);
            if (!file.TryGetProfile(profileName, out var profile))
            {
                errors.Add($"{path} has no profile [{profileName}]");
                return null;
            }

            if (NonEmpty(profile.Options.AccessKey) is not { } fileAccessKey || NonEmpty(profile.Options.SecretKey) is not { } fileSecretKey)
            {
                errors.Add($"profile [{profileName}] in {path} needs aws_access_key_id and aws_secret_access_key (other kinds of profile are not used)");
                return null;
            }

            return NonEmpty(profile.Options.Token) is { } fileToken
                ? new SessionAWSCredentials(fileAccessKey, fileSecretKey, fileToken)
                : new BasicAWSCredentials(fileAccessKey, fileSecretKey);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or AmazonClientException or FormatException)
        {
            errors.Add($"cannot read the credentials file {path}: {ex.GetType().Name}");
            return null;
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
