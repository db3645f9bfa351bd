using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

/// <summary>Container names are host names (RFC 1123 labels): they become the container's hostname and path names.</summary>
public static partial class ContainerName
{
    public const int MaxLength = 63;

    [GeneratedRegex("^[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?\\z")]
    private static partial Regex Pattern();

    public static void Validate(string? name)
    {
        if (string.IsNullOrEmpty(name))
            throw EngineException.Invalid("InvalidName", "container name must not be empty");
        if (name.Length > MaxLength)
            throw EngineException.Invalid("InvalidName", $"container name '{DisplayText.Escape(name[..MaxLength])}...' is longer than {MaxLength} characters");
        if (!Pattern().IsMatch(name))
            throw EngineException.Invalid("InvalidName",
                $"container name '{DisplayText.Escape(name)}' is invalid: use letters, digits and '-', starting with a letter and not ending with '-'");
    }
}
